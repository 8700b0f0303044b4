"""The torch side of segzero-edge: what needs torch and the official model code.

* ``qwen``: load a Hugging Face Qwen2.5-VL checkpoint (processor without torchvision, model).
* ``sam2_model``: build / load the official SAM2 from a config name or file and a ``.pt``.
* ``sources``: find the checkpoints an engine directory was exported from (manifest sources, sha256).
* ``torch_sam2``: the official SAM2 as ``SAM2ImagePredictor`` uses it (the export's oracle) and as a
  backend of the SAM2 pipeline.
* ``torch_reasoner``: transformers ``generate`` with our prompt and constraint (the export's oracle) and
  the model as a step backend of the reasoner pipeline.
* ``builders``: tiny random checkpoints in the real formats (tests, demo, benchmarks).
* ``plugin``: the ``"torch"`` backend plugin the runtime finds by entry point.

Export, training, benchmarks and tests import this package; the runtime core never does. torch and
transformers are imported inside functions, so importing a module here is cheap.
"""

"""TensorRT engines built on the device from an engine directory's ONNX graphs.

``segzero-edge build ENGINE_DIR`` (``build.py``) writes ``trt/<gpu>-<tensorrt version>/*.engine`` and a
``TrtBuild`` entry in the manifest; ``engine.py`` runs them without torch. ``tensorrt`` and
``cuda-python`` (the ``tensorrt`` extra) are imported only when used; ``profiles.py`` (profile shapes
from the manifest, folder names) needs neither.
"""

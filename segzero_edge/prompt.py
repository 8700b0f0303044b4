"""The Seg-Zero prompt contract, shared by training, export and the runtime.

Everything the reasoning model sees before it starts writing is defined here, once, per model family
(``FAMILIES``: ``"seg_zero"``, one object per answer; ``"vision_reasoner"``, a list of objects; ``"lens"``,
whose mask comes from the model's hidden states and whose text box is auxiliary):

* the user text, byte for byte as in the official code (``seg_zero_user_text``,
  ``vision_reasoner_user_text``; ``user_text`` picks the family's),
* its Qwen2.5-VL chat rendering for one image + one question (``render_chat``),
* its token ids with the ``tokenizers`` library (``PromptTokenizer``, no transformers): the single
  ``<|image_pad|>`` (an added, atomic token) is expanded to one pad per image embedding; the ids equal what
  ``transformers``' Qwen2.5-VL processor produces for the same image and question (tested),
* the default model input size (the image is stretched to ``size x size`` pixels, aspect ratio ignored,
  before the vision tower sees it; Seg-Zero uses 840) and where checkpoints record another size.

If any of this changes, bump ``PROMPT_VERSION``: it is written into every checkpoint and manifest, and
the runtime refuses an engine directory whose prompt version differs from its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .errors import CheckpointError, InputError, ManifestError

#: Version of everything in this module. Written into manifests and checkpoints.
PROMPT_VERSION = "seg-zero-1"

#: The model families: each has its own prompt, answer grammar, answer constraint and SAM2 prompting.
#: ``seg_zero``: one object (a box and two points); ``vision_reasoner``: a JSON list of objects (a box and
#: one point each). Checkpoints and engines that record no family are ``seg_zero``.
#: ``lens``: a grounding answer (Qwen's native box text, or a think + JSON box with the CoT template); the
#: mask comes from 64 learned queries run after the answer, not from the text.
SEG_ZERO = "seg_zero"
VISION_REASONER = "vision_reasoner"
LENS = "lens"
FAMILIES = (SEG_ZERO, VISION_REASONER, LENS)

#: Seg-Zero's model input size in pixels (the image is resized to 840x840, ignoring aspect ratio).
#: This is only the default: the real size of a model comes from its checkpoint (``read_input_size``)
#: and, after export, from the manifest.
SEG_ZERO_INPUT_SIZE = 840

#: Qwen2.5-VL geometry: 14-pixel patches merged 2x2 into one LLM token, so input sizes are multiples of 28.
PATCH_SIZE = 14
MERGE_SIZE = 2
INPUT_SIZE_MULTIPLE = PATCH_SIZE * MERGE_SIZE

#: The example answer inside the prompt. It is a Python dict repr (single quotes), *not* valid JSON,
#: exactly as in Seg-Zero's source.
SEG_ZERO_EXAMPLE_ANSWER = "{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}"

# One Python literal in Seg-Zero built by implicit concatenation: no space after the periods.
_SEG_ZERO_TEMPLATE = (
    "Please find '{Question}' with bbox and points."
    "Compare the difference between objects and find the most closely matched one."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the one bbox and points of two largest inscribed circles inside the interested object in JSON format."
    "i.e., <think> thinking process here </think><answer>{Answer}</answer>"
)

#: VisionReasoner's example answer: valid JSON this time (Seg-Zero's repository at HEAD,
#: ``inference_scripts/infer_multi_object.py``, and dvlab-research/VisionReasoner).
VISION_REASONER_EXAMPLE_ANSWER = (
    '[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, {"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]'
)

# Also one implicitly concatenated literal: no space after the periods, "bboxs" and "object(s)" as written.
_VISION_REASONER_TEMPLATE = (
    'Please find "{Question}" with bboxs and points.'
    "Compare the difference between object(s) and find the most closely matched object(s)."
    "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
    "Output the bbox(es) and point(s) inside the interested object(s) in JSON format."
    "i.e., <think> thinking process here </think><answer>{Answer}</answer>"
)

#: The system turn the Qwen2.5-VL template inserts when none is given (Seg-Zero training sets the same).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

#: LENS's system turn (hustvl/LENS ``src/open_r1/constants.py`` ``QWEN2_SYS``): note the trailing space.
LENS_SYSTEM_PROMPT = "You are a helpful assistant. "
#: LENS's user texts by template name, byte for byte (``question_template_registry``): ``grounding``
#: (``pr1_grounding``: OuyBin/LENS, LENS_ReasonSeg, LENS_ReasonSeg_FT) and ``cot`` (``samr1_v4``:
#: LENS_ReasonSeg_CoT; implicitly concatenated sentences, no spaces between them). The question is inserted
#: as given (``str.format``, no normalisation).
LENS_TEMPLATES: Mapping[str, str] = MappingProxyType(
    {
        "grounding": "Output the bounding box of the {question} in the image.",
        "cot": (
            'Locate "{question}", report the bbox coordinates in JSON format.'
            "Compare the difference between objects and find the most closely matched one."
            "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
            "Output the one bbox inside the interested object in JSON format."
            "i.e., <think>thinking process here</think>"
            "<answer>answer here</answer>"
        ),
    }
)
LENS_DEFAULT_TEMPLATE = "grounding"

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"

#: Name of the small JSON file a checkpoint directory carries to record its prompt contract
#: (``{"prompt_version": ..., "input_size": ...}``). Official Seg-Zero checkpoints have none: 840 applies.
CHECKPOINT_META_FILE = "segzero_edge.json"


def normalize_question(question: str) -> str:
    """Seg-Zero's query normalization: ``question.lower().strip(".")``.

    Only leading and trailing periods are removed; whitespace and quotes are kept as they are.
    """
    return check_text(question).lower().strip(".")


def check_text(text: str, what: str = "the question") -> str:
    """``text`` if it is a ``str`` that UTF-8 can encode; else an ``InputError`` (a lone surrogate such as
    ``"\\ud800"`` from a broken decoder cannot reach the tokenizer)."""
    if not isinstance(text, str):
        raise InputError(
            f"{what} must be a str, got {type(text).__name__}",
            hint="pass the instruction as text, e.g. 'the cup the robot should pick up'",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"{what} is not valid Unicode text: {exc.reason} at character {exc.start}",
            hint="decode the instruction with errors='replace' before passing it",
        ) from None
    return text


def seg_zero_user_text(question: str, *, with_image_token: bool = False) -> str:
    """The Seg-Zero user text for ``question``, byte for byte as the official code builds it.

    Args:
        question: the referring or reasoning query, e.g. ``"The unusal object in the image."``.
            It is normalized with ``lower()`` and ``strip(".")``; nothing is escaped.
        with_image_token: prefix the training-time ``<image>`` placeholder (Seg-Zero's training
            dataset does this; inference passes the image as a separate content item instead).

    Returns:
        The user text, with the single-quoted example answer and no space after the periods.
    """
    text = _SEG_ZERO_TEMPLATE.replace("{Question}", normalize_question(question)).replace(
        "{Answer}", SEG_ZERO_EXAMPLE_ANSWER
    )
    return "<image>" + text if with_image_token else text


def vision_reasoner_user_text(question: str, *, with_image_token: bool = False) -> str:
    """The VisionReasoner user text for ``question``, byte for byte as the official code builds it.

    Args:
        question: the instruction, normalized as VisionReasoner's model code does (``lower()``, then
            ``strip('."?!')``: leading and trailing periods, double quotes, question and exclamation marks
            go) and placed inside double quotes; nothing else is escaped.
        with_image_token: prefix the training-time ``<image>\\n`` placeholder (with the newline that
            the official training dataset writes and inference does not).
    """
    text = _VISION_REASONER_TEMPLATE.replace("{Question}", check_text(question).lower().strip('."?!')).replace(
        "{Answer}", VISION_REASONER_EXAMPLE_ANSWER
    )
    return "<image>\n" + text if with_image_token else text


def check_family(family: str) -> str:
    """``family`` if it is one of ``FAMILIES``; else an ``InputError`` that lists them."""
    if family not in FAMILIES:
        raise InputError(f"unknown model family {family!r}", hint=f"use one of {', '.join(FAMILIES)}")
    return family


def lens_user_text(question: str, template: str = LENS_DEFAULT_TEMPLATE) -> str:
    """LENS's user text for ``question`` with the template ``template`` (``LENS_TEMPLATES``), byte for byte.

    The question goes in unchanged (LENS formats it into the template as given)."""
    if template not in LENS_TEMPLATES:
        raise InputError(f"unknown LENS prompt template {template!r}", hint=f"use one of {', '.join(LENS_TEMPLATES)}")
    return LENS_TEMPLATES[template].replace("{question}", check_text(question))


def system_prompt_for(family: str) -> str:
    """The system turn ``family`` was trained with (LENS's ends with a space)."""
    return LENS_SYSTEM_PROMPT if check_family(family) == LENS else DEFAULT_SYSTEM_PROMPT


def user_text(
    question: str, family: str = SEG_ZERO, *, with_image_token: bool = False, template: str | None = None
) -> str:
    """The user text of ``family`` (``seg_zero_user_text``, ``vision_reasoner_user_text`` or
    ``lens_user_text`` with ``template``, default ``grounding``; ``template`` is only for LENS)."""
    family = check_family(family)
    if family == LENS:
        if with_image_token:
            raise InputError("LENS prompts have no training-time <image> placeholder")
        return lens_user_text(question, template or LENS_DEFAULT_TEMPLATE)
    if template is not None:
        raise InputError(f"prompt templates are for the LENS family, not {family!r}")
    build = seg_zero_user_text if family == SEG_ZERO else vision_reasoner_user_text
    return build(question, with_image_token=with_image_token)


def chat_messages(question: str, family: str = SEG_ZERO, *, template: str | None = None) -> list[dict]:
    """The chat messages of one request: one user turn, image item first, then the family's text.

    This is the form ``transformers``' ``apply_chat_template`` and TRL take. Seg-Zero and VisionReasoner
    give no system message, so the template inserts the default one; LENS gives its own (as its demo does).
    """
    user = {
        "role": "user",
        "content": [{"type": "image"}, {"type": "text", "text": user_text(question, family, template=template)}],
    }
    if check_family(family) == LENS:
        return [{"role": "system", "content": LENS_SYSTEM_PROMPT}, user]
    return [user]


def seg_zero_messages(question: str) -> list[dict]:
    """``chat_messages(question, "seg_zero")``."""
    return chat_messages(question, SEG_ZERO)


def render_chat_parts(
    question: str, *, family: str = SEG_ZERO, system_prompt: str | None = None, template: str | None = None
) -> tuple[str, str, str]:
    """``render_chat`` in three parts: the template before the user text, the user text (the family's text
    with ``question`` inside, from the end of ``<|vision_end|>`` to before ``<|im_end|>``), the template after.
    ``system_prompt`` defaults to the family's (``system_prompt_for``).

    ``PromptTokenizer`` encodes the middle part as plain text, so special tokens written in a question are
    characters, never control tokens."""
    system = system_prompt_for(family) if system_prompt is None else system_prompt
    return (
        f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n{VISION_START}{IMAGE_PAD}{VISION_END}",
        user_text(question, family, template=template),
        f"{IM_END}\n{IM_START}assistant\n",
    )


def render_chat(
    question: str, *, family: str = SEG_ZERO, system_prompt: str | None = None, template: str | None = None
) -> str:
    """The full prompt string for one image and one question, with the generation prompt.

    Identical to ``apply_chat_template(chat_messages(question, family), add_generation_prompt=True,
    tokenize=False)`` with Qwen2.5-VL's own chat template (``segzero_edge.reference.qwen.QWEN25VL_CHAT_TEMPLATE``;
    a test checks this against ``transformers``).
    The image appears as a single ``<|image_pad|>``; the runtime expands it to one pad token per
    image embedding (``expand_image_pads``).
    """
    return "".join(render_chat_parts(question, family=family, system_prompt=system_prompt, template=template))


def expand_image_pads(prompt: str, num_image_tokens: int) -> str:
    """Replace the single ``<|image_pad|>`` of ``prompt`` by ``num_image_tokens`` of them.

    ``num_image_tokens`` is (input_size / 28) ** 2 for a square input: 900 for 840x840.
    """
    if prompt.count(IMAGE_PAD) != 1:
        raise InputError(
            f"expected exactly one {IMAGE_PAD} in the prompt, found {prompt.count(IMAGE_PAD)}",
            hint="build the prompt with segzero_edge.prompt.render_chat",
        )
    if num_image_tokens < 1:
        raise InputError(f"num_image_tokens must be >= 1, got {num_image_tokens}")
    return prompt.replace(IMAGE_PAD, IMAGE_PAD * num_image_tokens)


def num_image_tokens(input_size: int) -> int:
    """LLM tokens for a square ``input_size`` image: (input_size / 28) ** 2 (900 for 840)."""
    validate_input_size(input_size)
    side = input_size // INPUT_SIZE_MULTIPLE
    return side * side


def validate_input_size(input_size: int) -> int:
    """Check that ``input_size`` is a positive multiple of 28 (Qwen2.5-VL patch 14, merge 2)."""
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        raise InputError(f"the model input size must be an int, got {input_size!r}")
    if input_size < INPUT_SIZE_MULTIPLE or input_size % INPUT_SIZE_MULTIPLE:
        raise InputError(
            f"unsupported model input size {input_size}",
            hint=f"use a positive multiple of {INPUT_SIZE_MULTIPLE} (Seg-Zero uses {SEG_ZERO_INPUT_SIZE})",
        )
    return input_size


def write_checkpoint_meta(
    checkpoint_dir: str | Path, *, input_size: int = SEG_ZERO_INPUT_SIZE, family: str = SEG_ZERO
) -> Path:
    """Record the prompt contract of a reasoner checkpoint (prompt version, input size, family) next to it."""
    validate_input_size(input_size)
    meta = {"prompt_version": PROMPT_VERSION, "input_size": input_size, "family": check_family(family)}
    path = Path(checkpoint_dir) / CHECKPOINT_META_FILE
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def read_checkpoint_meta(checkpoint_dir: str | Path) -> dict:
    """The prompt contract of a reasoner checkpoint.

    Official checkpoints (Seg-Zero, VisionReasoner) carry no ``segzero_edge.json``: they get this prompt
    version, input size 840 and the ``seg_zero`` family (the exporter's ``--family`` names another).

    Returns:
        ``{"prompt_version": str, "input_size": int, "family": str}``.
    """
    path = Path(checkpoint_dir) / CHECKPOINT_META_FILE
    if not path.exists():
        return {"prompt_version": PROMPT_VERSION, "input_size": SEG_ZERO_INPUT_SIZE, "family": SEG_ZERO}
    try:
        meta = json.loads(path.read_text())
        input_size = validate_input_size(int(meta.get("input_size", SEG_ZERO_INPUT_SIZE)))
        version = str(meta.get("prompt_version", PROMPT_VERSION))
        family = check_family(str(meta.get("family", SEG_ZERO)))
    except (ValueError, TypeError, AttributeError, InputError) as exc:
        raise CheckpointError(
            f"{path} is not a valid checkpoint prompt record: {exc}",
            hint=f"fix or delete {path.name} (without it, input size {SEG_ZERO_INPUT_SIZE} is used)",
        ) from exc
    return {"prompt_version": version, "input_size": input_size, "family": family}


class TextStream:
    """Incremental detokenizer: ``step(token_id)`` returns the new text (possibly ``""``).

    Multi-byte characters split across tokens are held back until complete, so the concatenation of the
    steps is the decoded text.
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        from tokenizers.decoders import DecodeStream

        self._tok = tokenizer
        self._stream = DecodeStream(skip_special_tokens=skip_special_tokens)

    def step(self, token_id: int) -> str:
        out = self._stream.step(self._tok, int(token_id))
        return out or ""


class PromptTokenizer:
    """The reasoner's tokenizer.

    Args:
        tokenizer_file: ``tokenizer.json`` (Hugging Face ``tokenizers`` format).
        image_pad_id: id of ``<|image_pad|>``.
    """

    def __init__(self, tokenizer_file: str | Path, image_pad_id: int):
        from tokenizers import Tokenizer

        path = Path(tokenizer_file)
        if not path.is_file():
            raise ManifestError(
                f"tokenizer file {path} is missing", hint="re-export the reasoner; the engine directory is incomplete"
            )
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a plain Exception on malformed files
            raise ManifestError(f"cannot read tokenizer {path}: {exc}") from exc
        self.image_pad_id = int(image_pad_id)
        if self._tok.id_to_token(self.image_pad_id) != "<|image_pad|>":
            raise ManifestError(
                f"{path}: token {self.image_pad_id} is not <|image_pad|>",
                hint="the tokenizer does not belong to this engine; re-export it",
            )

    @property
    def tokenizer(self):
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode_text(self, text: str) -> list[int]:
        """Plain encoding of ``text`` (special tokens written in it are recognised)."""
        return list(self._tok.encode(text, add_special_tokens=True).ids)

    def encode_plain(self, text: str) -> list[int]:
        """``text`` as characters only: normaliser, pre-tokeniser and model, without the added-token
        matching, so ``<|im_end|>``, ``<|image_pad|>`` or ``<tool_call>`` in it are ordinary text. For text
        without added tokens this equals ``encode_text`` (the tokenizer splits at added tokens first, then
        runs the same three steps on each piece)."""
        tok = self._tok
        normalized = tok.normalizer.normalize_str(text) if tok.normalizer is not None else text
        pieces = (
            tok.pre_tokenizer.pre_tokenize_str(normalized) if tok.pre_tokenizer is not None else [(normalized, None)]
        )
        return [t.id for piece, _ in pieces for t in tok.model.tokenize(piece)]

    def encode_prompt(
        self,
        question: str,
        num_image_tokens: int,
        *,
        family: str = SEG_ZERO,
        system_prompt: str | None = None,
        template: str | None = None,
    ) -> np.ndarray:
        """``(seq,)`` int64 ids of the family's full prompt with ``num_image_tokens`` image pads.

        The template's own special tokens come from the template; the user text (with ``question``) is
        encoded by ``encode_plain``: what a user writes never becomes a control token.

        Raises:
            InputError: ``question`` is not text that UTF-8 can encode (e.g. a lone surrogate).
        """
        check_text(question)
        head, user, tail = render_chat_parts(question, family=family, system_prompt=system_prompt, template=template)
        head_ids = self._tok.encode(head, add_special_tokens=False).ids
        if head_ids.count(self.image_pad_id) != 1 or head_ids[-2] != self.image_pad_id:
            raise InputError("the system prompt must not contain <|image_pad|> or other special tokens")
        pads = [self.image_pad_id] * int(num_image_tokens)
        ids = head_ids[:-2] + pads + head_ids[-1:] + self.encode_plain(user)
        ids += self._tok.encode(tail, add_special_tokens=False).ids
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def stream(self, *, skip_special_tokens: bool = True) -> TextStream:
        return TextStream(self._tok, skip_special_tokens=skip_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def vocabulary(self) -> Mapping[str, int]:
        return self._tok.get_vocab(with_added_tokens=True)

"""Pure-Python twin of the native ``AnswerStream`` (``csrc/core/answer_stream.*``, documented there).

Works on characters instead of bytes; the tags, brackets and quotes it looks at are ASCII, so both
see the same events at the same places.
"""

from __future__ import annotations

PRE, THINK, AFTER, ANSWER, DONE = 0, 1, 2, 3, 4
REASON_NONE, REASON_ANSWER_CLOSED = 0, 1
_THINK_OPEN, _THINK_CLOSE, _ANSWER_OPEN, _ANSWER_CLOSE = 0, 1, 2, 3
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def _build_automaton(tags: tuple[str, ...]) -> tuple[list[dict[str, int]], list[int]]:
    """Aho-Corasick over the tags' characters: (transitions per state, tag ending at each state)."""
    goto: list[dict[str, int]] = [{}]
    out = [-1]
    for t, tag in enumerate(tags):
        s = 0
        for ch in tag:
            if ch not in goto[s]:
                goto[s][ch] = len(goto)
                goto.append({})
                out.append(-1)
            s = goto[s][ch]
        out[s] = t
    alphabet = sorted({ch for tag in tags for ch in tag})
    fail = [0] * len(goto)
    table: list[dict[str, int]] = [{} for _ in goto]
    queue = []
    for ch in alphabet:
        s = goto[0].get(ch, 0)
        table[0][ch] = s
        if s:
            queue.append(s)
    for r in queue:
        if out[r] < 0:
            out[r] = out[fail[r]]
        for ch in alphabet:
            s = goto[r].get(ch)
            if s is not None:
                fail[s] = table[fail[r]][ch]
                queue.append(s)
                table[r][ch] = s
            else:
                table[r][ch] = table[fail[r]][ch]
    return table, out


_TABLE, _OUT = _build_automaton(_TAGS)


class AnswerStream:
    """Same interface as ``_native.AnswerStream``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.phase = PRE
        self.reason = REASON_NONE
        self._tag = 0
        self._tentative = False
        self._enter_answer(False)
        self.phase = PRE

    @property
    def done(self) -> bool:
        return self.phase == DONE

    def _enter_answer(self, tentative: bool) -> None:
        self.phase = ANSWER
        self._tentative = tentative

    def feed(self, piece: str) -> bool:
        if self.phase == DONE:
            return True
        table, out = _TABLE, _OUT
        for c in piece:
            self._tag = table[self._tag].get(c, 0)
            tag = out[self._tag]
            phase = self.phase
            if phase == PRE:
                if tag == _THINK_OPEN:
                    self.phase = THINK
                elif tag == _THINK_CLOSE:
                    self.phase = AFTER
                elif tag == _ANSWER_OPEN:
                    self._enter_answer(True)
            elif phase == THINK:
                if tag == _THINK_CLOSE:
                    self.phase = AFTER
                elif tag == _ANSWER_OPEN:
                    self._enter_answer(True)
            elif phase == AFTER:
                if tag == _ANSWER_OPEN:
                    self._enter_answer(False)
            elif phase == ANSWER:
                if tag == _ANSWER_CLOSE:
                    self.phase, self.reason = DONE, REASON_ANSWER_CLOSED
                elif tag == _THINK_CLOSE and self._tentative:
                    self.phase = AFTER
            if self.phase == DONE:
                return True
        return False

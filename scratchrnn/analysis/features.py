"""Ground-truth features of a text, one number per character.

These are the quantities the paper looks for in single cells ("a cell that is on
inside quotes", "a cell that counts bracket depth", "a cell that tracks the
position in the line"). Every feature is a float array of shape (N,), N = the
number of characters of the text, aligned with the characters, so it can be
correlated directly with a unit's activation trace.

The text is read as Python source by a small lexer (``python_lex``): strings
with ' " ''' \"\"\" delimiters and backslash escapes, ``#`` comments outside
strings, and brackets outside strings and comments. On English prose the same
rules still give sensible quote and bracket features; an unclosed single-line
quote (an apostrophe, say) ends at the end of its line, as Python's tokenizer
would give up there too.

A text cut from the middle of a document (a validation split, say) may begin
inside a docstring, and a lexer that starts there reads every later string
inside out. Pass the text that came before it as ``prefix`` (the whole training
split, or just the current file): lexing then starts at the beginning of the
prefix, and column and indentation continue the prefix's last line.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scratchrnn.core.backend import CPU

np = CPU.xp

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
QUOTES = ("'", '"')

CHAR_CLASSES = ("newline", "space", "letter", "digit", "bracket", "quote", "other")
"""Names of the classes ``char_class`` returns, in the order of their integer codes."""


@dataclass(frozen=True)
class Lexed:
    """What the Python-aware lexer says about each of the N characters.

    in_string:  (N,) bool  the character belongs to a string literal, its opening and
                closing quote characters included (the prefix letter of f"..." is not).
    in_comment: (N,) bool  the character is part of a ``#`` comment: from the ``#`` up to,
                not including, the newline.
    depth:      (N,) int   bracket nesting depth: an opening bracket counts itself, a closing
                bracket still counts its pair, so "a(b)c" -> 0,1,1,1,0.
    opener_distance: (N,) int  for a closing bracket, how many characters back its matching
                opening bracket is; for the first character of a string's closing delimiter,
                how far back the first character of its opening delimiter is; 0 elsewhere.
    """

    in_string: tuple
    in_comment: tuple
    depth: tuple
    opener_distance: tuple


def python_lex(text: str, prefix: str = "") -> Lexed:
    """Lex ``text`` (N characters) as Python source, starting at the beginning of
    ``prefix`` (text that precedes it in its document, "" if none); describe only ``text``.

    Rules: outside strings, ``#`` starts a comment that runs to the end of the line, and
    ' or " (tripled or not) opens a string. Inside a string a backslash escapes the next
    character (both are in the string); the string ends at its own delimiter, or, for a
    single-quoted string, at an unescaped newline (which is then code). Brackets count only
    in code. A closing bracket closes the innermost open bracket of its kind, abandoning any
    opened after that one; a closing bracket with no open partner is ignored.
    """
    whole = _lex_document(prefix + text)
    k = len(prefix)
    return Lexed(*(field[k:] for field in whole))


@lru_cache(maxsize=4)
def _lex_document(doc: str) -> tuple:
    """(in_string, in_comment, depth, opener_distance) tuples for every character of ``doc``."""
    n = len(doc)
    in_string = [False] * n
    in_comment = [False] * n
    depth = [0] * n
    opener_distance = [0] * n
    stack: list[int] = []  # indices of open brackets
    open_count = dict.fromkeys(OPENERS, 0)
    i = 0
    while i < n:
        ch = doc[i]
        if ch == "#":  # comment to end of line
            j = doc.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                in_comment[k] = True
                depth[k] = len(stack)
            i = j
            continue
        if ch in QUOTES:  # a string literal: scan to its end
            delim = ch * 3 if doc.startswith(ch * 3, i) else ch
            i = _scan_string(doc, i, delim, in_string, opener_distance, len(stack), depth)
            continue
        if ch in OPENERS:
            stack.append(i)
            open_count[ch] += 1
            depth[i] = len(stack)
        elif ch in CLOSERS:
            match = _innermost(doc, stack, CLOSERS[ch], open_count)
            if match >= 0:
                for j in stack[match + 1:]:  # abandon brackets left open inside this pair
                    open_count[doc[j]] -= 1
                del stack[match + 1:]
                depth[i] = len(stack)
                opener_distance[i] = i - stack.pop()
                open_count[CLOSERS[ch]] -= 1
            else:
                depth[i] = len(stack)
        else:
            depth[i] = len(stack)
        i += 1
    return tuple(in_string), tuple(in_comment), tuple(depth), tuple(opener_distance)


def _innermost(doc: str, stack: list, opener: str, open_count: dict) -> int:
    """Position in ``stack`` of the innermost open bracket ``opener``, or -1.
    ``open_count`` (bracket -> how many are on the stack) skips hopeless scans; a scan that
    finds its bracket is paid for by the brackets popped above it."""
    if open_count[opener] == 0:
        return -1
    for pos in range(len(stack) - 1, -1, -1):
        if doc[stack[pos]] == opener:
            return pos
    return -1


def _scan_string(text, start, delim, in_string, opener_distance, cur_depth, depth) -> int:
    """Mark the string literal opened by ``delim`` at ``start``; return the index after it."""
    n = len(text)
    for k in range(start, min(start + len(delim), n)):
        in_string[k] = True
        depth[k] = cur_depth
    i = start + len(delim)
    while i < n:
        ch = text[i]
        if ch == "\\":  # escape: the backslash and the next character stay in the string
            for k in range(i, min(i + 2, n)):
                in_string[k] = True
                depth[k] = cur_depth
            i += 2
            continue
        if text.startswith(delim, i):  # closing delimiter
            for k in range(i, i + len(delim)):
                in_string[k] = True
                depth[k] = cur_depth
            opener_distance[i] = i - start
            return i + len(delim)
        if ch == "\n" and len(delim) == 1:  # unterminated single-line string
            depth[i] = cur_depth
            return i + 1
        in_string[i] = True
        depth[i] = cur_depth
        i += 1
    return n


def in_string(text: str, prefix: str = ""):
    """(N,) float: 1.0 for characters of a string literal (quote characters included), else 0."""
    return np.asarray(python_lex(text, prefix).in_string, dtype=np.float64)


def in_comment(text: str, prefix: str = ""):
    """(N,) float: 1.0 from a ``#`` outside strings up to (not including) the newline, else 0."""
    return np.asarray(python_lex(text, prefix).in_comment, dtype=np.float64)


def bracket_depth(text: str, prefix: str = ""):
    """(N,) float: nesting depth of (), [], {} in code (an opener and its closer both count)."""
    return np.asarray(python_lex(text, prefix).depth, dtype=np.float64)


def _last_line(prefix: str) -> str:
    """The unfinished line at the end of ``prefix`` (what ``text`` continues)."""
    return prefix[prefix.rfind("\n") + 1:]


def column(text: str, prefix: str = ""):
    """(N,) float: index of each character in its line (0 after a newline; a newline
    character has the column just past the end of the line it ends)."""
    out = np.empty(len(text), dtype=np.float64)
    col = len(_last_line(prefix))
    for i, ch in enumerate(text):
        out[i] = col
        col = 0 if ch == "\n" else col + 1
    return out


def indentation(text: str, prefix: str = ""):
    """(N,) float: width in columns of the leading whitespace of each character's line
    (a tab advances to the next multiple of 8, as in Python's tokenizer). Divide by 4 for
    indentation levels in PEP 8 code. A newline belongs to the line it ends."""
    tail = _last_line(prefix)
    out = np.empty(len(text), dtype=np.float64)
    start = -len(tail)
    for line in _split_on_newline(tail + text):
        width = 0
        for ch in line:
            if ch == " ":
                width += 1
            elif ch == "\t":
                width = (width // 8 + 1) * 8
            else:
                break
        out[max(start, 0):max(start + len(line), 0)] = width
        start += len(line)
    return out


def _split_on_newline(text: str) -> list[str]:
    """Lines of ``text`` split only at "\\n" (each keeps its newline)."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def char_class(text: str):
    """(N,) int: class code of each character, an index into ``CHAR_CLASSES``
    (newline, space = other whitespace, letter, digit, bracket = ()[]{}, quote = ' " `, other)."""
    codes = {name: k for k, name in enumerate(CHAR_CLASSES)}
    out = np.empty(len(text), dtype=np.int64)
    for i, ch in enumerate(text):
        if ch == "\n":
            name = "newline"
        elif ch.isspace():
            name = "space"
        elif ch.isalpha():
            name = "letter"
        elif ch.isdigit():
            name = "digit"
        elif ch in OPENERS or ch in CLOSERS:
            name = "bracket"
        elif ch in "'\"`":
            name = "quote"
        else:
            name = "other"
        out[i] = codes[name]
    return out


ALL_FEATURES = {
    "in_string": in_string,
    "bracket_depth": bracket_depth,
    "column": column,
    "indentation": indentation,
    "in_comment": in_comment,
}
"""Feature name -> function(text, prefix="") returning a float array (N,)."""

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
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from scratchrnn.backend import CPU

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
    opener_of:  (N,) int   for a closing bracket, the index of its matching opening bracket;
                for the first character of a string's closing delimiter, the index of the
                first character of its opening delimiter; -1 everywhere else.
    """

    in_string: tuple
    in_comment: tuple
    depth: tuple
    opener_of: tuple


@lru_cache(maxsize=4)
def python_lex(text: str) -> Lexed:
    """Lex ``text`` (N characters) as Python source in one left-to-right pass.

    Rules: outside strings, ``#`` starts a comment that runs to the end of the line, and
    ' or " (tripled or not) opens a string. Inside a string a backslash escapes the next
    character (both are in the string); the string ends at its own delimiter, or, for a
    single-quoted string, at an unescaped newline (which is then code). Brackets count only
    in code; a closing bracket that does not match the innermost open one is ignored.
    """
    n = len(text)
    in_string = [False] * n
    in_comment = [False] * n
    depth = [0] * n
    opener_of = [-1] * n
    stack: list[int] = []  # indices of open brackets
    i = 0
    while i < n:
        ch = text[i]
        if ch == "#":  # comment to end of line
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                in_comment[k] = True
                depth[k] = len(stack)
            i = j
            continue
        if ch in QUOTES:  # a string literal: scan to its end
            delim = ch * 3 if text.startswith(ch * 3, i) else ch
            i = _scan_string(text, i, delim, in_string, opener_of, len(stack), depth)
            continue
        if ch in OPENERS:
            stack.append(i)
            depth[i] = len(stack)
        elif ch in CLOSERS:
            depth[i] = len(stack)
            if stack and text[stack[-1]] == CLOSERS[ch]:
                opener_of[i] = stack.pop()
        else:
            depth[i] = len(stack)
        i += 1
    return Lexed(tuple(in_string), tuple(in_comment), tuple(depth), tuple(opener_of))


def _scan_string(text, start, delim, in_string, opener_of, cur_depth, depth) -> int:
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
            opener_of[i] = start
            return i + len(delim)
        if ch == "\n" and len(delim) == 1:  # unterminated single-line string
            depth[i] = cur_depth
            return i + 1
        in_string[i] = True
        depth[i] = cur_depth
        i += 1
    return n


def in_string(text: str):
    """(N,) float: 1.0 for characters of a string literal (quote characters included), else 0."""
    return np.asarray(python_lex(text).in_string, dtype=np.float64)


def in_comment(text: str):
    """(N,) float: 1.0 from a ``#`` outside strings up to (not including) the newline, else 0."""
    return np.asarray(python_lex(text).in_comment, dtype=np.float64)


def bracket_depth(text: str):
    """(N,) float: nesting depth of (), [], {} in code (an opener and its closer both count)."""
    return np.asarray(python_lex(text).depth, dtype=np.float64)


def column(text: str):
    """(N,) float: index of each character in its line (0 after a newline; a newline
    character has the column just past the end of the line it ends)."""
    out = np.empty(len(text), dtype=np.float64)
    col = 0
    for i, ch in enumerate(text):
        out[i] = col
        col = 0 if ch == "\n" else col + 1
    return out


def indentation(text: str):
    """(N,) float: width in columns of the leading whitespace of each character's line
    (a tab advances to the next multiple of 8, as in Python's tokenizer). Divide by 4 for
    indentation levels in PEP 8 code. A newline belongs to the line it ends."""
    out = np.empty(len(text), dtype=np.float64)
    start = 0
    for line in _split_on_newline(text):
        width = 0
        for ch in line:
            if ch == " ":
                width += 1
            elif ch == "\t":
                width = (width // 8 + 1) * 8
            else:
                break
        out[start:start + len(line)] = width
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
"""Feature name -> function(text) returning a float array (N,)."""

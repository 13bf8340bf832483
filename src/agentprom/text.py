"""Text from the wire made safe to keep: valid UTF-8 and at most a bounded number of bytes.

Every string a decoder hands on (attribute values, span and event names, the
event API's names and ids) goes through ``bounded_text`` once, so nothing
after the decoders can meet a string that cannot be written as UTF-8 (the
JSONL log, the runtime API, a label) or one large enough to matter for memory.

Why it is needed: JSON may carry lone UTF-16 surrogates (``"\\ud800"`` is valid
JSON, RFC 8259 section 8.2) which Python decodes into a ``str`` that has no
UTF-8 encoding; protobuf guarantees valid UTF-8 for ``string`` fields but no
size. A lone surrogate becomes U+FFFD (the Unicode replacement character), as
a UTF-8 decoder replaces invalid bytes. A string past the limit is cut at a
character boundary; the cut is not marked, so the kept prefix is what a label
or record shows.
"""

from __future__ import annotations

#: the default bound of a stored string (config ``server.max_string_bytes``)
DEFAULT_MAX_STRING_BYTES = 256


def bounded_text(text: str, max_bytes: int = DEFAULT_MAX_STRING_BYTES) -> str:
    """``text`` as valid UTF-8 of at most ``max_bytes`` bytes (0 = no length bound).

    The common case (short ASCII) costs two length checks and ``isascii``."""
    if text.isascii():
        if max_bytes and len(text) > max_bytes:
            return text[:max_bytes]
        return text
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: JSON's \ud800 escapes
        # through UTF-16, a paired surrogate becomes its character and a lone one one U+FFFD
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        encoded = text.encode("utf-8")
    if max_bytes and len(encoded) > max_bytes:
        return encoded[:max_bytes].decode("utf-8", "ignore")  # "ignore" drops a cut multi-byte tail
    return text

"""Text out of a screenplay file, judged by its content, not its declared type: PDF (pypdf), DOCX
(python-docx), or plain text in UTF-8 / UTF-16 / Windows-1251."""
from __future__ import annotations

import zipfile


class UnreadableDocument(Exception):
    """The file cannot be read as a screenplay; the message says why, for the analysis's reason."""


MAX_TEXT_CHARS = 20_000_000


def sniff(head: bytes) -> str:
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    return "text"


def extract_text(handle) -> str:
    """The document's text, pages separated by form feeds. Raises UnreadableDocument."""
    handle.seek(0)
    kind = sniff(handle.read(8))
    handle.seek(0)
    if kind == "pdf":
        text = _pdf(handle)
    elif kind == "zip":
        text = _docx(handle)
    else:
        text = _plain(handle.read(MAX_TEXT_CHARS))
    if not text.strip():
        raise UnreadableDocument("the file holds no text")
    return text


def _pdf(handle) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError
    try:
        reader = PdfReader(handle)
        if reader.is_encrypted:
            raise UnreadableDocument("the PDF is encrypted")
        return "\f".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise UnreadableDocument(f"the PDF cannot be read ({error.__class__.__name__})") from None


def _docx(handle) -> str:
    import docx
    try:
        document = docx.Document(handle)
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise UnreadableDocument(f"the DOCX cannot be read ({error.__class__.__name__})") from None
    except Exception as error:  # python-docx raises its own PackageNotFoundError for non-DOCX zips
        raise UnreadableDocument(f"not a DOCX document ({error.__class__.__name__})") from None
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append(" ".join(cell.text for cell in row.cells))
    return "\n".join(lines)


def _plain(raw: bytes) -> str:
    if b"\x00" in raw[:4096] and not (raw.startswith(b"\xff\xfe") or raw.startswith(b"\xfe\xff")):
        raise UnreadableDocument("the file is binary, not text")
    for encoding in ("utf-8-sig", "utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    text = raw.decode("cp1251", errors="replace")
    # Windows-1251 decodes any byte; a file full of control characters was never text.
    controls = sum(1 for ch in text[:20000] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > len(text[:20000]) * 0.05:
        raise UnreadableDocument("the file is binary, not text")
    return text

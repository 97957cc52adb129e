"""A small PDF 1.4 writer: A4 pages of text in Helvetica, written by hand.

Enough for an invoice that PDF readers, ``pypdf`` (and so the ``factur-x`` library, which
embeds its XML with pypdf) and text extraction handle: a catalog, a page tree, one content
stream per page (uncompressed, so tests can find text in the bytes), the two standard fonts
with WinAnsiEncoding (so "€" and umlauts print), an info dictionary and a correct
cross-reference table.
"""

from datetime import UTC, datetime

WIDTH, HEIGHT = 595, 842            # A4 in points
MARGIN_TOP, MARGIN_BOTTOM = 60, 60
FONTS = {"regular": "F1", "bold": "F2"}


class Text:
    """One line of text at column ``x`` (several Texts may share a line: same ``row``)."""

    def __init__(self, text, x=50, size=10, style="regular", new_row=True, gap=0):
        self.text, self.x, self.size, self.style = text, x, size, style
        self.new_row, self.gap = new_row, gap


def _escape(text):
    encoded = text.encode("cp1252", "replace").decode("latin-1")
    return encoded.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pages(texts):
    """Lay texts out top to bottom; a new page when the current one is full."""
    pages: list[list[str]] = [[]]
    y = HEIGHT - MARGIN_TOP
    for text in texts:
        if text.new_row:
            y -= round(text.size * 1.45) + text.gap
            if y < MARGIN_BOTTOM:
                pages.append([])
                y = HEIGHT - MARGIN_TOP - round(text.size * 1.45)
        if text.text:
            pages[-1].append(f"BT /{FONTS[text.style]} {text.size} Tf {text.x} {y} Td "
                             f"({_escape(text.text)}) Tj ET")
    return pages


def render(texts, title="", when=None):
    pages = _pages(texts)
    first_page = 5  # objects 1-4: catalog, page tree, the two fonts; then page + content pairs
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [{}] /Count {} >>".format(
            " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages))), len(pages)),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    for index, lines in enumerate(pages):
        stream = "\n".join(lines)
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {WIDTH} {HEIGHT}] "
                       f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> "
                       f"/Contents {first_page + 2 * index + 1} 0 R >>")
        objects.append(f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\n"
                       f"endstream")
    stamp = datetime.fromtimestamp(when or 0, tz=UTC).strftime("D:%Y%m%d%H%M%SZ")
    objects.append(f"<< /Title ({_escape(title)}) /Producer (Stripe emulator) "
                   f"/CreationDate ({stamp}) >>")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{obj}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)

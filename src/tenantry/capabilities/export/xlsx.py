"""A streaming XLSX (Office Open XML) writer: typed cells, constant memory, many sheets.

Why not xlsxwriter: its ``constant_memory`` mode spends most of its time per cell in generic
bookkeeping (cell tables, dimension checks, per-cell XML writer calls): minutes for 1M rows
(docs/performance.md, "Measurements behind the code"). This writer does the one thing an
export needs —
rows of typed values, written once, in order — with one pre-bound formatter per column and one
string join per batch of rows, streamed into the zip entry (deflate level 1). It writes only
what Excel needs: inline strings (no shared-string table to hold in memory), numbers, booleans,
date-times as serial days with a date format, a bold header row, a new sheet every
``rows_per_sheet`` rows. Cells carry no ``r`` attribute (optional in ECMA-376; readers place
them in order), so an empty cell is ``<c/>``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from tenantry.capabilities.export.sources import Column

#: date.toordinal() of 1899-12-30, day 0 of Excel's (1900) date system.
EXCEL_EPOCH_ORDINAL = 693594
UNIX_EPOCH_SERIAL = 25569.0
MAX_CELL_CHARS = 32_767
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_NS_R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
# XML escapes, and control characters XML 1.0 cannot carry (removed).
_ESCAPE = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;"} | {
    c: None for c in range(32) if c not in (9, 10, 13)
}
_ESCAPE_TABLE = str.maketrans(_ESCAPE)

STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet {_NS}><numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/>\
<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts><fonts count="2"><font><sz val="11"/>\
<name val="Calibri"/></font><font><b/><sz val="11"/><name val="Calibri"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill><fill>\
<patternFill patternType="gray125"/></fill></fills><borders count="1"><border><left/><right/>\
<top/><bottom/><diagonal/></border></borders><cellStyleXfs count="1"><xf numFmtId="0" \
fontId="0" fillId="0" borderId="0"/></cellStyleXfs><cellXfs count="4"><xf numFmtId="0" \
fontId="0" fillId="0" borderId="0" xfId="0"/><xf numFmtId="164" fontId="0" fillId="0" \
borderId="0" xfId="0" applyNumberFormat="1"/><xf numFmtId="165" fontId="0" fillId="0" \
borderId="0" xfId="0" applyNumberFormat="1"/><xf numFmtId="0" fontId="1" fillId="0" \
borderId="0" xfId="0" applyFont="1"/></cellXfs><cellStyles count="1"><cellStyle \
name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>"""


def _text(v: Any) -> str:
    s = v if isinstance(v, str) else str(v)
    if len(s) > MAX_CELL_CHARS:
        s = s[:MAX_CELL_CHARS]
    return f'<c t="inlineStr"><is><t xml:space="preserve">{s.translate(_ESCAPE_TABLE)}</t></is></c>'


def _formatter(c: Column) -> Callable[[Any], str]:
    t = c.type
    if t in ("int", "numeric"):
        return lambda v: f"<c><v>{v}</v></c>"
    if t == "float":
        return lambda v: f"<c><v>{v!r}</v></c>" if v == v and abs(v) != float("inf") else "<c/>"
    if t == "bool":
        return lambda v: f'<c t="b"><v>{1 if v else 0}</v></c>'
    if t == "timestamptz":
        return lambda v: f'<c s="1"><v>{v.timestamp() / 86400.0 + UNIX_EPOCH_SERIAL!r}</v></c>'
    if t == "date":
        return lambda v: f'<c s="2"><v>{v.toordinal() - EXCEL_EPOCH_ORDINAL}</v></c>'
    if t == "uuid":
        return lambda v: f'<c t="inlineStr"><is><t>{v}</t></is></c>'
    return _text


class XlsxWriter:
    def __init__(self, path: Path, columns: Sequence[Column], rows_per_sheet: int) -> None:
        self.zip = zipfile.ZipFile(
            path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True
        )
        self.columns = list(columns)
        self.rows_per_sheet = rows_per_sheet
        self.formatters = [_formatter(c) for c in columns]
        header = "".join(
            f'<c s="3" t="inlineStr"><is><t>{c.name}</t></is></c>' for c in self.columns
        )
        self.header = f'<row r="1">{header}</row>'
        self.sheets = 0
        self.row = 0  # rows of the current sheet, header included
        self.fh: IO[bytes] | None = None

    def _new_sheet(self) -> IO[bytes]:
        self._close_sheet()
        self.sheets += 1
        fh = self.zip.open(f"xl/worksheets/sheet{self.sheets}.xml", "w", force_zip64=True)
        fh.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS} {_NS_R}>'
            f'<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
            f'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>'
            f"<sheetData>{self.header}".encode()
        )
        self.fh = fh
        self.row = 1
        return fh

    def _close_sheet(self) -> None:
        if self.fh is not None:
            self.fh.write(b"</sheetData></worksheet>")
            self.fh.close()
            self.fh = None

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        fmts = list(enumerate(self.formatters))
        start = 0
        while start < len(rows):
            fh = self.fh if self.fh is not None and self.row <= self.rows_per_sheet else None
            if fh is None:
                fh = self._new_sheet()
            take = min(len(rows) - start, self.rows_per_sheet + 1 - self.row)
            parts = []
            r = self.row + 1
            for rec in rows[start : start + take]:
                cells = "".join("<c/>" if rec[j] is None else f(rec[j]) for j, f in fmts)
                parts.append(f'<row r="{r}">{cells}</row>')
                r += 1
            fh.write("".join(parts).encode())
            self.row += take
            start += take

    def close(self) -> None:
        if self.sheets == 0:
            self._new_sheet()
        self._close_sheet()
        n = self.sheets
        sheets = "".join(
            f'<sheet name="Sheet{i}" sheetId="{i}" r:id="rId{i}"/>' for i in range(1, n + 1)
        )
        rels = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
            for i in range(1, n + 1)
        )
        overrides = "".join(
            f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_CT}.worksheet+xml"/>'
            for i in range(1, n + 1)
        )
        head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        self.zip.writestr(
            "[Content_Types].xml",
            f'{head}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
            f"{overrides}</Types>",
        )
        self.zip.writestr(
            "_rels/.rels",
            f'{head}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships"><Relationship Id="rId1" Type="{_REL}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        self.zip.writestr(
            "xl/workbook.xml", f"{head}<workbook {_NS} {_NS_R}><sheets>{sheets}</sheets></workbook>"
        )
        self.zip.writestr(
            "xl/_rels/workbook.xml.rels",
            f'{head}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'relationships">{rels}<Relationship Id="rId{n + 1}" Type="{_REL}/styles" '
            'Target="styles.xml"/></Relationships>',
        )
        self.zip.writestr("xl/styles.xml", STYLES)
        self.zip.close()

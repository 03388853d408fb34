"""The four writers. Each streams the export query inside the caller's REPEATABLE READ unit
of work into a local staging file, with constant memory, reporting progress as it goes.

- CSV: ``COPY (query) TO STDOUT (FORMAT csv, HEADER)`` straight to the file: PostgreSQL does
  the formatting, Python only moves bytes (no cursor, no ``csv.writer``).
- XLSX: our streaming writer (``xlsx.py``; why not xlsxwriter is said there), rows from a
  server-side cursor in batches, one pre-bound typed formatter per column; a new sheet every
  ``rows_per_sheet`` rows (Excel's limit is 1,048,576 including the header).
- Parquet: pyarrow, one row group per batch of rows, typed schema from the source's columns.
- PDF: reportlab canvas, a paginated monospace table (one ``drawString`` per row), headers
  repeated on every page, page numbers in the footer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tenantry.capabilities.export.sources import Column
from tenantry.kernel.db.uow import UnitOfWork
from tenantry.kernel.jobs import PermanentJobError

Progress = Callable[[int], Awaitable[None]]
BATCH = 10_000
PDF_MARGIN = 28.0
PDF_LEADING = 8.6
PARQUET_BATCH = 32_768

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
    "pdf": "application/pdf",
}


class LimitExceeded(PermanentJobError):
    """The export is larger than the tenant's plan allows."""


async def write_csv(
    uow: UnitOfWork,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[Column],
    path: Path,
    progress: Progress,
    max_bytes: int,
) -> int:
    written = 0
    lines = 0
    with path.open("wb", buffering=1 << 20) as f:

        async def sink(chunk: bytes) -> None:
            nonlocal written, lines
            f.write(chunk)
            written += len(chunk)
            if written > max_bytes:
                raise LimitExceeded(f"the export exceeds the plan's {max_bytes} bytes")
            lines += chunk.count(b"\n")  # approximate (quoted newlines): progress only
            await progress(max(0, lines - 1))

        await uow.copy_from_query(sql, *params, output=sink, format="csv", header=True)
    return written


async def write_xlsx(
    uow: UnitOfWork,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[Column],
    path: Path,
    progress: Progress,
    rows_per_sheet: int,
) -> int:
    from tenantry.capabilities.export.xlsx import XlsxWriter

    writer = XlsxWriter(path, columns, rows_per_sheet)
    done = 0
    try:
        cur = await uow.cursor(sql, *params)
        while batch := await cur.fetch(BATCH):
            writer.write_rows(batch)
            done += len(batch)
            await progress(done)
    finally:
        writer.close()
    return done


def _arrow_type(c: Column) -> Any:
    import pyarrow as pa

    return {
        "text": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "numeric": pa.decimal128(38, c.scale),
        "bool": pa.bool_(),
        "uuid": pa.string(),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
    }[c.type]


async def write_parquet(
    uow: UnitOfWork,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[Column],
    path: Path,
    progress: Progress,
) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field(c.name, _arrow_type(c)) for c in columns])
    done = 0
    cur = await uow.cursor(sql, *params)
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        while batch := await cur.fetch(PARQUET_BATCH):
            arrays = []
            for j, c in enumerate(columns):
                values = [rec[j] for rec in batch]
                if c.type == "uuid":
                    values = [None if v is None else str(v) for v in values]
                elif c.type == "numeric":
                    q = Decimal(1).scaleb(-c.scale)
                    values = [None if v is None else v.quantize(q) for v in values]
                arrays.append(pa.array(values, type=schema.field(j).type))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            done += len(batch)
            await progress(done)
        if done == 0:
            writer.write_table(schema.empty_table())
    return done


def _pdf_cell(c: Column, width: int) -> Callable[[Any], str]:
    """A formatter of one column's values to exactly ``width`` characters (``~`` = cut)."""
    right = c.type in ("int", "float", "numeric")
    blank = " " * width
    conv: Callable[[Any], str]
    if c.type == "timestamptz":  # asyncpg gives UTC datetimes: "YYYY-MM-DD HH:MM:SS"
        conv = lambda v: v.astimezone(UTC).isoformat(" ")[:19]  # noqa: E731
    elif c.type == "text":
        conv = lambda v: v.replace("\n", " ").replace("\r", " ")  # noqa: E731
    else:
        conv = str

    def cell(v: Any) -> str:
        if v is None:
            return blank
        text = conv(v)
        if len(text) > width:
            return text[: max(0, width - 1)] + "~"
        return text.rjust(width) if right else text.ljust(width)

    return cell


async def write_pdf(
    uow: UnitOfWork,
    sql: str,
    params: Sequence[Any],
    columns: Sequence[Column],
    path: Path,
    progress: Progress,
    title: str,
) -> int:
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen.canvas import Canvas

    # Compressed page streams as binary, not ASCII85 (faster to write, smaller files).
    rl_config.useA85 = 0

    font, size, leading, margin = "Courier", 7.0, PDF_LEADING, PDF_MARGIN
    page_w, page_h = landscape(A4)
    line_chars = int((page_w - 2 * margin) / (size * 0.6))
    default = {"uuid": 36, "timestamptz": 19, "date": 10, "bool": 5, "int": 12, "numeric": 14}
    widths = [max(len(c.name), c.width or default.get(c.type, 24)) for c in columns]
    avail = line_chars - (len(columns) - 1)
    if sum(widths) > avail:  # shrink proportionally, keep at least 4 characters
        scale = avail / sum(widths)
        widths = [max(4, int(w * scale)) for w in widths]
    cells = [_pdf_cell(c, w) for c, w in zip(columns, widths, strict=True)]
    header = " ".join(c.name[:w].ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "-" * min(line_chars, len(header))
    per_page = pdf_rows_per_page()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    canvas = Canvas(str(path), pagesize=(page_w, page_h), pageCompression=1)
    canvas.setTitle(title)
    page = 0
    lines: list[str] = []

    def flush_page() -> None:
        # One text object per page: far cheaper than one drawString per row.
        nonlocal page, lines
        page += 1
        canvas.setFont(font, size)
        canvas.drawString(margin, margin / 2, f"{title} - {stamp}")
        canvas.drawRightString(page_w - margin, margin / 2, f"Page {page}")
        text = canvas.beginText(margin, page_h - margin)
        text.setFont(font, size, leading)
        text.textLines([header, rule, *lines], trim=0)
        canvas.drawText(text)
        canvas.showPage()
        lines = []

    done = 0
    cur = await uow.cursor(sql, *params)
    while batch := await cur.fetch(BATCH):
        for rec in batch:
            line = " ".join([f(v) for f, v in zip(cells, rec, strict=False)])
            if not line.isascii():  # the standard PDF fonts cover Latin-1 only
                line = line.encode("latin-1", "replace").decode("latin-1")
            lines.append(line)
            if len(lines) >= per_page:
                flush_page()
        done += len(batch)
        await progress(done)
    if lines or page == 0:
        flush_page()
    canvas.save()
    return done


class Throttle:
    """Calls ``fn(rows)`` at most every ``interval`` seconds (and always for the last call)."""

    def __init__(self, fn: Progress, interval: float) -> None:
        self.fn = fn
        self.interval = interval
        self.last = time.monotonic()

    async def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            await self.fn(rows)


def pdf_rows_per_page() -> int:
    """Data rows on one PDF page (A4 landscape, the constants of ``write_pdf``)."""
    from reportlab.lib.pagesizes import A4, landscape

    _w, h = landscape(A4)
    return int((h - 2 * PDF_MARGIN - 3 * PDF_LEADING) / PDF_LEADING)

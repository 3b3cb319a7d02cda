"""Benchmark: payment documents rendered per second with a pool of processes, ms and bytes
per document, beside a simpler renderer in the same run.

The documents are real: a generated town is billed for a month in a database of the
benchmark's own, and its documents are assembled from the stored bill; then each renderer
renders them in one process (ms per document, median) and in a pool of ``--processes``
(documents per second over the whole batch, median of ``--runs``). The simpler renderer puts
the same text on the page in the same embedded font, with no table layout and no QR code:
what the real one costs beyond the bare minimum. The real renderer is also measured with each
document's own font subsets (``shared_subsets=False``), as it rendered before they were shared.

    .venv/bin/python -m bench.documents [--documents 2000] [--processes 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date

import psycopg
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from billing.accounts.town import TownSpec, generate_town
from billing.billrun.run import bill
from meterline import db
from meterline.bill_runs import Selection
from meterline.documents.assemble import payment_documents
from meterline.documents.model import PaymentDocument, period_name
from meterline.documents.pdf import FONT, money, register_fonts, render_pdf

PERIOD = date(2026, 3, 1)
# its own database (METERLINE_BENCH_DATABASE: another, so that two benchmarks do not share one)
DATABASE = os.environ.get("METERLINE_BENCH_DATABASE",
                          "postgresql://postgres@127.0.0.1:5432/meterline_bench_documents")


def render_text(doc: PaymentDocument) -> bytes:
    """The simpler renderer: the document's text, line under line, in the same font."""
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    text = canvas.beginText(28, A4[1] - 40)
    text.setFont(FONT, 8)
    text.textLine(f"ЕПД за {period_name(doc.period)}: {doc.account_id} {doc.payer_name}")
    text.textLine(doc.address)
    for total in doc.payees:
        p = total.payee
        text.textLine(f"{p.name} ИНН {p.inn} р/с {p.settlement_account} БИК {p.bic} "
                      f"к оплате {money(total.to_pay)}")
    for line in doc.lines:
        text.textLine(f"{line.name} {line.unit} {line.volume} {line.tariff} "
                      f"{money(line.charged)} {money(line.recalculation)} "
                      f"{money(line.benefit)} {money(line.total)}")
    text.textLine(f"Итого к оплате {money(doc.to_pay)}")
    canvas.drawText(text)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def render_own_subsets(doc: PaymentDocument) -> bytes:
    """The real renderer with each document's own font subsets (as before they were shared)."""
    return render_pdf(doc, shared_subsets=False)


RENDERERS: dict[str, Callable[[PaymentDocument], bytes]] = {
    "payment document (layout + QR)": render_pdf,
    "the same, font subsets per document": render_own_subsets,
    "simpler: text only, no QR": render_text,
}


def _size(args: tuple[str, PaymentDocument]) -> int:
    name, doc = args
    return len(RENDERERS[name](doc))


def _batch(name: str, docs: Sequence[PaymentDocument]) -> int:
    return sum(len(RENDERERS[name](doc)) for doc in docs)


async def prepare(accounts: int) -> list[PaymentDocument]:
    """A billed town's documents (the town is made once and kept between runs)."""
    await db.create_database(DATABASE)
    await db.migrate(DATABASE)
    async with await psycopg.AsyncConnection.connect(DATABASE, autocommit=True) as conn:
        await generate_town(conn, TownSpec(prefix="B", accounts=accounts, months=3))
        await bill(conn, PERIOD, Selection(), "bench")
        cur = await conn.execute(
            "SELECT DISTINCT account_id FROM bill_lines WHERE period = %s ORDER BY 1 LIMIT %s",
            (PERIOD, accounts))
        ids = [a for (a,) in await cur.fetchall()]
        return await payment_documents(conn, PERIOD, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    docs = asyncio.run(prepare(args.documents))
    print(f"## payment documents: {len(docs)} documents of a billed town, "
          f"{sum(len(d.lines) for d in docs) / len(docs):.1f} lines each; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    register_fonts()
    per_process = max(1, len(docs) // args.processes // 8)
    for name, render in RENDERERS.items():
        render(docs[0])  # fonts and caches warm
        times, sizes = [], []
        for doc in docs[: min(len(docs), 300)]:
            started = time.perf_counter()
            sizes.append(len(render(doc)))
            times.append(time.perf_counter() - started)
        rates = []
        with ProcessPoolExecutor(args.processes, initializer=register_fonts) as pool:
            list(pool.map(_size, [(name, docs[0])] * args.processes))  # warm the workers
            for _ in range(args.runs):
                started = time.perf_counter()
                chunks = [docs[i:i + per_process] for i in range(0, len(docs), per_process)]
                total = sum(pool.map(_batch, [name] * len(chunks), chunks))
                rates.append(len(docs) / (time.perf_counter() - started))
        print(f"{name}: {statistics.median(rates):.0f} documents/s with {args.processes} "
              f"processes (runs: {', '.join(f'{r:.0f}' for r in rates)}); one process "
              f"{statistics.median(times) * 1000:.1f} ms per document (median), "
              f"{statistics.median(sizes) / 1024:.1f} KiB per document, "
              f"{total / len(docs) / 1024:.1f} KiB on average")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

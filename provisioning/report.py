"""The installer's printouts: the scan's table and the commissioning report (terminal and a standalone HTML page
to keep with the site's papers)."""

from __future__ import annotations

from html import escape

from edge.commissioning import Commissioning
from provisioning.site_config import counted_text

HEADINGS = {
    "uk": {"title": "Акт пусконалагодження шлюзу", "passed": "УСІ ПЕРЕВІРКИ ПРОЙДЕНО",
           "failed": "Є ЗАУВАЖЕННЯ — див. що зробити", "check": "Перевірка", "result": "Результат",
           "site": "Об'єкт", "gateway": "Шлюз", "at": "Час"},
    "en": {"title": "Gateway commissioning report", "passed": "ALL CHECKS PASSED",
           "failed": "ITEMS NEED ATTENTION — see what to do", "check": "Check", "result": "Result",
           "site": "Site", "gateway": "Gateway", "at": "Time"},
}


def scan_table(scan: dict) -> str:
    rows = [("bus", "unit", "profile", "serial", "counted", "proposed id", "role", "line")]
    proposed = {(m["bus"], m["unit"], m["channel"]): m for m in scan.get("proposal", {}).get("meters", [])}
    for m in scan["meters"]:
        p = proposed.get((m["bus"], m["unit"], m["channel"]), {})
        rows.append((m["bus"], str(m["unit"]) + (f".{m['channel']}" if m["channel"] else ""),
                     m["profile"] or "?", m["serial"] or "", p.get("counted") or counted_text(m), p.get("id", ""),
                     p.get("role", ""), p.get("line") or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    state = "complete" if scan["complete"] else "STOPPED AT THE BUDGET (not every unit was asked)"
    lines.append(f"{len(scan['meters'])} meters; {scan['probed']} of {scan['planned']} probes, {scan['silent']} silent;"
                 f" {scan['elapsed_s']} s of {scan['budget_s']} s; {state}")
    return "\n".join(lines)


def terminal_report(report: Commissioning, lang: str = "uk") -> str:
    words = HEADINGS[lang]
    out = [f"{words['title']}: {words['gateway']} {report.gateway}, {words['site']} {report.site}"]
    for item in report.items:
        out.append(f"  {'✔' if item.ok else '✘'} {item.say(lang)}")
    out.append(words["passed"] if report.passed else words["failed"])
    return "\n".join(out)


def html_report(report: Commissioning, lang: str = "uk") -> str:
    words = HEADINGS[lang]
    rows = "\n".join(
        f'<tr class="{"ok" if item.ok else "bad"}"><td>{escape(item.key)}</td>'
        f'<td>{"✔" if item.ok else "✘"}</td><td>{escape(item.say(lang))}</td></tr>' for item in report.items)
    verdict = words["passed"] if report.passed else words["failed"]
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(words['title'])} — {escape(report.gateway)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem auto; max-width: 60rem; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }} td, th {{ border-bottom: 1px solid #ccc; padding: .4rem; text-align: left; vertical-align: top; }}
tr.bad td {{ background: #fde8e8; }} tr.ok td:nth-child(2) {{ color: #17702e; }} tr.bad td:nth-child(2) {{ color: #a11; }}
.verdict {{ font-weight: bold; font-size: 1.2rem; }}
</style></head><body>
<h1>{escape(words['title'])}</h1>
<p>{escape(words['gateway'])}: <b>{escape(report.gateway)}</b> · {escape(words['site'])}: <b>{escape(report.site)}</b>
 · {escape(words['at'])}: {escape(report.at.strftime('%Y-%m-%d %H:%M:%S UTC'))}</p>
<p class="verdict">{escape(verdict)}</p>
<table><thead><tr><th>{escape(words['check'])}</th><th></th><th>{escape(words['result'])}</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""

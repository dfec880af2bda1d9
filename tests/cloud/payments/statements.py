"""Statement fixtures as a bank would send them (camt.053.001.08 and CSV exports)."""

from __future__ import annotations

NS = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def entry(amount, purpose, ref, payer="Іваненко Олег", iban="UA213223130000026007233566001", cdt="CRDT",
          status="BOOK", reversal=False, day="2026-11-03", details=None):
    txs = details or [(amount, purpose, payer, iban, None)]
    tx_xml = "".join(
        f"""<TxDtls>{f'<Amt Ccy="UAH">{a}</Amt>' if len(txs) > 1 else ''}<Refs>{f'<AcctSvcrRef>{r}</AcctSvcrRef>' if r else ''}<EndToEndId>NOTPROVIDED</EndToEndId></Refs>
          <RltdPties><Dbtr><Pty><Nm>{p}</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>{i}</IBAN></Id></DbtrAcct></RltdPties>
          <RmtInf><Ustrd>{u}</Ustrd></RmtInf></TxDtls>"""
        for a, u, p, i, r in txs)
    return f"""<Ntry><Amt Ccy="UAH">{amount}</Amt><CdtDbtInd>{cdt}</CdtDbtInd>{'<RvslInd>true</RvslInd>' if reversal else ''}
      <Sts><Cd>{status}</Cd></Sts><BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
      <AcctSvcrRef>{ref}</AcctSvcrRef><NtryDtls>{tx_xml}</NtryDtls></Ntry>"""


def camt053(*entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="{NS}"><BkToCstmrStmt><GrpHdr><MsgId>STMT-1</MsgId><CreDtTm>2026-11-04T06:00:00</CreDtTm></GrpHdr>
<Stmt><Id>1</Id><Acct><Id><IBAN>UA853005280000026007012345678</IBAN></Id></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="UAH">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-03</Dt></Dt></Bal>
{''.join(entries)}</Stmt></BkToCstmrStmt></Document>""".encode()

"""Ports: the UN/LOCODE table (`PORTS`), the IATA airport codes and the port entities of a text."""

from __future__ import annotations

import re
from collections.abc import Iterator

from banxway.extraction.patterns import _alternation

# --- ports -------------------------------------------------------------------------------------------------------

# UN/LOCODE: names (English and local spellings); the busiest sea ports, airports and Indian ICDs.
_PORT_TABLE = """
INNSA:Nhava Sheva|JNPT|JNPA|Jawaharlal Nehru Port|INBOM:Mumbai|Bombay|INMUN:Mundra|INPAV:Pipavav|INHZA:Hazira
INMAA:Chennai|Madras|INCCU:Kolkata|Calcutta|INHAL:Haldia|INCOK:Cochin|Kochi|INTUT:Tuticorin|Thoothukudi
INVTZ:Visakhapatnam|Vizag|INKAT:Kattupalli|INENR:Ennore|INIXY:Kandla|Deendayal|INMRM:Mormugao|Goa|INIXE:Mangalore
INDEL:Delhi|New Delhi|INTKD:Tughlakabad|ICD TKD|INBLR:Bangalore|Bengaluru|INHYD:Hyderabad|INAMD:Ahmedabad
INLUH:Ludhiana|INPNQ:Pune|INJAI:Jaipur|INNAG:Nagpur|INKRK:Krishnapatnam|INTRV:Trivandrum|Thiruvananthapuram
AEJEA:Jebel Ali|AEDXB:Dubai|AEAUH:Abu Dhabi|AEKHL:Khalifa Port|AESHJ:Sharjah|AEKLF:Khor Fakkan|OMSLL:Salalah
OMSOH:Sohar|OMMCT:Muscat|SAJED:Jeddah|SADMM:Dammam|SARUH:Riyadh|QAHMD:Hamad Port|QADOH:Doha|BHKBS:Bahrain
KWSWK:Shuwaikh|KWKWI:Kuwait|IQUQR:Umm Qasr|PKKHI:Karachi|PKBQM:Port Qasim|LKCMB:Colombo|BDCGP:Chittagong|Chattogram
BDDAC:Dhaka|NPKTM:Kathmandu|MVMLE:Malé|SGSIN:Singapore|MYPKG:Port Klang|MYTPP:Tanjung Pelepas|MYPEN:Penang
MYKUL:Kuala Lumpur|THLCH:Laem Chabang|THBKK:Bangkok|VNSGN:Ho Chi Minh|Saigon|Cat Lai|VNHPH:Haiphong|Hai Phong
VNCMT:Cai Mep|IDJKT:Jakarta|Tanjung Priok|IDSUB:Surabaya|PHMNL:Manila|CNSHA:Shanghai|Xangai|Shanghái|Schanghai
CNNGB:Ningbo|CNSZX:Shenzhen|CNYTN:Yantian|CNSHK:Shekou|CNCAN:Guangzhou|CNNSA:Nansha|CNTAO:Qingdao|Tsingtao
CNTXG:Tianjin|Xingang|CNXMN:Xiamen|CNDLC:Dalian|CNLYG:Lianyungang|CNFOC:Fuzhou|CNPEK:Beijing|CNCTU:Chengdu
CNWUH:Wuhan|CNCKG:Chongqing|HKHKG:Hong Kong|TWKHH:Kaohsiung|TWKEL:Keelung|TWTPE:Taipei|KRPUS:Busan|Pusan
KRINC:Incheon|KRSEL:Seoul|JPTYO:Tokyo|JPYOK:Yokohama|JPUKB:Kobe|JPNGO:Nagoya|JPOSA:Osaka|AUSYD:Sydney
AUMEL:Melbourne|AUBNE:Brisbane|AUFRE:Fremantle|NZAKL:Auckland|NLRTM:Rotterdam|NLAMS:Amsterdam|Schiphol
BEANR:Antwerp|Antwerpen|Anvers|Amberes|Antuérpia|BEZEE:Zeebrugge|BELGG:Liège|Liege|BEBRU:Brussels|DEHAM:Hamburg
Hambourg|Hamburgo|DEBRV:Bremerhaven|DEBRE:Bremen|DEFRA:Frankfurt|DEMUC:Munich|München|DEDUS:Düsseldorf
Dusseldorf|DELEJ:Leipzig|DECGN:Cologne|Köln|DESTR:Stuttgart|GBFXT:Felixstowe|GBSOU:Southampton
GBLGP:London Gateway|GBLHR:Heathrow|GBLON:London|Londres|GBMAN:Manchester|GBLIV:Liverpool|GBTIL:Tilbury
FRLEH:Le Havre|Havre|FRMRS:Marseille|Marseilles|FRFOS:Fos|FRPAR:Paris|FRCDG:Charles de Gaulle|FRLYS:Lyon
ESVLC:Valencia|ESALG:Algeciras|ESBCN:Barcelona|ESMAD:Madrid|ESBIO:Bilbao|PTLEI:Leixões|Leixoes|PTLIS:Lisbon
Lisboa|PTSIE:Sines|ITGOA:Genoa|Genova|Gênes|Génova|ITSPE:La Spezia|ITGIT:Gioia Tauro|ITTRS:Trieste|ITVCE:Venice
ITNAP:Naples|ITMIL:Milan|Milano|GRPIR:Piraeus|TRIST:Istanbul|TRAMR:Ambarli|TRMER:Mersin|TRIZM:Izmir|SIKOP:Koper
PLGDN:Gdansk|Gdańsk|SEGOT:Gothenburg|Göteborg|DKAAR:Aarhus|DKCPH:Copenhagen|NOOSL:Oslo|FIHEL:Helsinki
ROCND:Constanta|MTMAR:Marsaxlokk|ILHFA:Haifa|ILASH:Ashdod|EGALY:Alexandria|EGPSD:Port Said|EGDAM:Damietta
JOAQJ:Aqaba|DJJIB:Djibouti|MAPTM:Tanger Med|Tangier|MACAS:Casablanca|KEMBA:Mombasa|TZDAR:Dar es Salaam
ZADUR:Durban|ZACPT:Cape Town|NGAPP:Apapa|NGLOS:Lagos|GHTEM:Tema|TGLFW:Lomé|CIABJ:Abidjan|USLAX:Los Angeles
USLGB:Long Beach|USOAK:Oakland|USSEA:Seattle|USTIW:Tacoma|USNYC:New York|USEWR:Newark|USSAV:Savannah
USHOU:Houston|USCHS:Charleston|USORF:Norfolk|USMIA:Miami|USCHI:Chicago|USATL:Atlanta|USBAL:Baltimore
USJFK:JFK Airport|CAVAN:Vancouver|CAMTR:Montreal|CATOR:Toronto|CAPRR:Prince Rupert|MXZLO:Manzanillo
MXVER:Veracruz|MXLZC:Lázaro Cárdenas|Lazaro Cardenas|PAMIT:Manzanillo Panama|PABLB:Balboa|COCTG:Cartagena
COBUN:Buenaventura|PECLL:Callao|CLSAI:San Antonio|CLVAP:Valparaíso|Valparaiso|BRSSZ:Santos|BRPNG:Paranaguá
Paranagua|BRRIG:Rio Grande|BRITJ:Itajaí|Itajai|BRGRU:Guarulhos|BRSAO:São Paulo|Sao Paulo|ARBUE:Buenos Aires|DEDUI:Duisburg
INBOM:मुंबई|INDEL:दिल्ली|INMAA:चेन्नई|INCCU:कोलकाता|INMUN:मुंद्रा|INNSA:न्हावा शेवा|AEDXB:दुबई|دبي|AEJEA:جبل علي
CNSHA:上海|CNNGB:宁波|CNSZX:深圳|HKHKG:香港|CNTAO:青岛|SGSIN:新加坡|NLRTM:鹿特丹|DEHAM:汉堡|UYMVD:Montevideo|ECGYE:Guayaquil|RULED:St Petersburg|Saint Petersburg|RUNVS:Novorossiysk|RUVVO:Vladivostok
"""

# IATA airport codes, counted only as a route pair ("DEL - FRA", "BOM/DXB").
_AIRPORTS = {
    "BOM": "INBOM", "DEL": "INDEL", "MAA": "INMAA", "BLR": "INBLR", "HYD": "INHYD", "CCU": "INCCU", "AMD": "INAMD",
    "COK": "INCOK", "DXB": "AEDXB", "DWC": "AEDWC", "AUH": "AEAUH", "DOH": "QADOH", "FRA": "DEFRA", "MUC": "DEMUC",
    "LHR": "GBLHR", "CDG": "FRCDG", "AMS": "NLAMS", "BRU": "BEBRU", "LGG": "BELGG", "IST": "TRIST", "SIN": "SGSIN",
    "HKG": "HKHKG", "PVG": "CNSHA", "PEK": "CNPEK", "CAN": "CNCAN", "ICN": "KRINC", "NRT": "JPTYO", "JFK": "USNYC",
    "ORD": "USCHI", "LAX": "USLAX", "MIA": "USMIA", "ATL": "USATL", "YYZ": "CATOR", "GRU": "BRGRU", "CMB": "LKCMB",
    "DAC": "BDDAC", "KHI": "PKKHI", "JED": "SAJED", "RUH": "SARUH", "NBO": "KENBO", "JNB": "ZAJNB", "SYD": "AUSYD",
}  # fmt: skip


def _parse_port_table(table: str) -> dict[str, tuple[str, ...]]:
    ports: dict[str, list[str]] = {}
    code = ""
    for item in "|".join(line.strip() for line in table.strip().splitlines()).split("|"):
        if ":" in item:
            code, item = item.split(":", 1)
            ports.setdefault(code, [])
        ports[code].append(item)
    return {code: tuple(names) for code, names in ports.items()}


PORTS: dict[str, tuple[str, ...]] = _parse_port_table(_PORT_TABLE)
_PORT_BY_NAME = {name.casefold(): code for code, names in PORTS.items() for name in names}


def _is_cjk(text: str) -> bool:
    return all(0x3040 <= ord(c) <= 0x9FFF for c in text)


_PORT_NAME = re.compile(
    rf"(?<![\w-])(?:{_alternation(n for n in _PORT_BY_NAME if not _is_cjk(n))})(?![\w-])", re.IGNORECASE
)
_PORT_NAME_CJK = re.compile(_alternation(n for n in _PORT_BY_NAME if _is_cjk(n)))  # no spaces between words
_OFFICE_BEFORE = re.compile(
    r"(?:team|office|branch|staff|colleagues|people|guys|head office|hq|based)[ \t]+(?:in|at|from)[ \t]+$", re.I
)
_AIRPORT_CUED = re.compile(
    r"(?i:\b(?:ex|from|to|at|arrived|arrive|arriving|via|pol|pod|origin|dest|destination|departed)\b)[ \t:]+([A-Z]{3})(?![\w-])"
)
_CAPITALISED_ONLY = frozenset({"tema", "fos", "goa", "malé", "balboa", "deendayal", "lyon"})
_PORT_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[A-Z2-9]{3}(?![A-Za-z0-9])")
_AIRPORT_PAIR = re.compile(r"(?<![\w-])([A-Z]{3})[ \t]*(?:-|–|/|>|→|to)[ \t]*([A-Z]{3})(?![\w-])")


def _ports(text: str) -> Iterator[tuple[str, int, int]]:
    for m in _PORT_NAME.finditer(text):
        if m[0].casefold() in _CAPITALISED_ONLY and not m[0][0].isupper():
            continue  # "el tema", "goa" in lower case are words, not ports
        if _OFFICE_BEFORE.search(text, max(0, m.start() - 30), m.start()):
            continue  # "our team in Chennai" is a place of work, not of the shipment
        yield _PORT_BY_NAME[re.sub(r"[ \t]+", " ", m[0]).casefold()], m.start(), m.end()
    for m in _PORT_CODE.finditer(text):
        if m[0] in PORTS:
            yield m[0], m.start(), m.end()
    for m in _AIRPORT_PAIR.finditer(text):
        if m[1] in _AIRPORTS and m[2] in _AIRPORTS:
            yield _AIRPORTS[m[1]], m.start(1), m.end(1)
            yield _AIRPORTS[m[2]], m.start(2), m.end(2)
    for m in _AIRPORT_CUED.finditer(text):
        if m[1] in _AIRPORTS:
            yield _AIRPORTS[m[1]], m.start(1), m.end(1)
    for m in _PORT_NAME_CJK.finditer(text):
        yield _PORT_BY_NAME[m[0]], m.start(), m.end()

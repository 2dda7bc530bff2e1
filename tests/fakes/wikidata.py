"""Fake Wikidata Query Service: GET /sparql?query=...&format=json, answered in the W3C
SPARQL 1.1 Query Results JSON format (application/sparql-results+json)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fakes.server import Handler, Recorded, Reply

SPARQL_PATH = "/sparql"
ENTITY = "http://www.wikidata.org/entity/"
RESULTS_TYPE = "application/sparql-results+json;charset=utf-8"
XSD_INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
WKT_LITERAL = "http://www.opengis.net/ont/geosparql#wktLiteral"
VARS = ["item", "itemLabel", "sitelinks", "coord", "itemDescription", "article"]
WIKIPEDIA_EN = "https://en.wikipedia.org/"

_STRING = re.compile(r'"((?:[^"\\\n\r]|\\.)*)"')
_ECHARS = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_LABEL = re.compile(r'\?city rdfs:label "((?:[^"\\\n\r]|\\.)*)"@en \.')
_LIMIT = re.compile(r"\nLIMIT ([0-9]+)\s*$")


def decode_sparql_string(raw: str) -> str:
    """The value of a STRING_LITERAL2 body: ECHAR and UCHAR (\\uXXXX, \\UXXXXXXXX) decoded;
    ValueError for an escape the SPARQL 1.1 grammar does not allow."""
    out: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        code = raw[index + 1:index + 2]
        if code in _ECHARS:
            out.append(_ECHARS[code])
            index += 2
        elif code in ("u", "U"):
            width = 4 if code == "u" else 8
            digits = raw[index + 2:index + 2 + width]
            if not re.fullmatch(f"[0-9A-Fa-f]{{{width}}}", digits):
                raise ValueError(f"bad UCHAR at {index}")
            out.append(chr(int(digits, 16)))
            index += 2 + width
        else:
            raise ValueError(f"bad escape at {index}")
    return "".join(out)


def string_literals(query: str) -> tuple[list[str], str]:
    """Decode every double-quoted literal; return them and the query with them blanked."""
    literals: list[str] = []

    def take(match: re.Match[str]) -> str:
        literals.append(decode_sparql_string(match.group(1)))
        return '""'

    return literals, _STRING.sub(take, query)


@dataclass
class WikidataItem:
    """A sight item as the query sees it; `label=None` means no English label (the label
    service then answers the QID), each coordinate gives one more result row; `description`
    is the English schema:description, `article` the title of its English Wikipedia sitelink."""

    qid: str
    label: str | None
    sitelinks: int
    coords: list[str] = field(default_factory=lambda: ["Point(2.2945 48.8583)"])
    description: str | None = None
    article: str | None = None


def row(item: WikidataItem, coord: str | None, *, description: bool = False,
        article: bool = False) -> dict[str, Any]:
    """One binding as WDQS serialises it (absent OPTIONAL variables are left out); the
    description and article only when the query asks for them."""
    label = item.label if item.label is not None else item.qid
    binding: dict[str, Any] = {
        "item": {"type": "uri", "value": f"{ENTITY}{item.qid}"},
        "itemLabel": {"xml:lang": "en", "type": "literal", "value": label},
        "sitelinks": {"datatype": XSD_INTEGER, "type": "literal", "value": str(item.sitelinks)},
    }
    if item.label is None:
        del binding["itemLabel"]["xml:lang"]  # the fallback QID carries no language
    if coord is not None:
        binding["coord"] = {"datatype": WKT_LITERAL, "type": "literal", "value": coord}
    if description and item.description is not None:
        binding["itemDescription"] = {"xml:lang": "en", "type": "literal",
                                      "value": item.description}
    if article and item.article is not None:
        title = quote(item.article.replace(" ", "_"))
        binding["article"] = {"type": "uri", "value": f"{WIKIPEDIA_EN}wiki/{title}"}
    return binding


def malformed_query(message: str) -> Reply:
    """WDQS answers an unparsable query with 400 and a Java stack trace as text/plain."""
    return Reply(400, "SPARQL-QUERY: queryStr=...\njava.util.concurrent.ExecutionException: "
                 f"org.openrdf.query.MalformedQueryException: {message}\n\tat ...",
                 {"Content-Type": "text/plain;charset=utf-8"})


def results(bindings: list[dict[str, Any]]) -> Reply:
    return Reply(200, {"head": {"vars": VARS}, "results": {"bindings": bindings}},
                 {"Content-Type": RESULTS_TYPE})


def wikidata_handler(cities: dict[str, list[WikidataItem]]) -> Handler:
    """Answers the city's items' rows (one per coordinate), honouring ORDER BY sitelinks (ties
    in list order) and LIMIT; the English label must match exactly, as rdfs:label "..."@en
    does."""

    def handle(request: Recorded) -> Reply:
        query = request.param("query")
        if query is None:
            return Reply(400, "Missing query", {"Content-Type": "text/plain"})
        if request.param("format") != "json" and "sparql-results+json" not in request.headers.get(
                "accept", ""):
            return Reply(200, "<?xml version='1.0'?><sparql/>",
                         {"Content-Type": "application/sparql-results+xml"})
        label, limit = _LABEL.search(query), _LIMIT.search(query)
        try:
            skeleton = string_literals(query)[1]
            city = decode_sparql_string(label.group(1)) if label else ""
        except ValueError as exc:
            return malformed_query(str(exc))
        if label is None or limit is None or skeleton.count("{") != skeleton.count("}"):
            return malformed_query("Encountered unexpected token")
        items = cities.get(city, [])
        if "ORDER BY DESC(?sitelinks)" in skeleton:  # stable: ties keep the list's order
            items = sorted(items, key=lambda item: -item.sitelinks)
        described = "?item schema:description ?itemDescription" in skeleton
        linked = f"schema:isPartOf <{WIKIPEDIA_EN}>" in skeleton
        rows = [row(item, coord, description=described, article=linked) for item in items
                for coord in (list[str | None](item.coords) or [None])]
        return results(rows[:int(limit.group(1))])

    return handle

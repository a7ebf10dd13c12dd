"""SEO facts of crawled pages and what the SEO_AUDIT and KEYWORD_ANALYSIS jobs make of them.

Pure code, no I/O: ``parse_page`` turns one fetched HTML page into ``PageFacts``;
``audit`` finds the issues of a crawl and scores it; ``rank_keywords`` says where each
keyword appears and which page ranks best for it. The rules and the formulas are the
documented ones (docs/seo.md); the thresholds are constants here.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

TITLE_MAX_CHARS = 60
DESCRIPTION_MAX_CHARS = 160
SLOW_RESPONSE_MS = 1000
HEAVY_PAGE_BYTES = 512_000
# More hops than this before a page is a redirect chain (one redirect is normal).
REDIRECT_HOPS_ALLOWED = 1

# Page-level issue types and their weight in the score (they add up to 100). A weight is
# taken in proportion to the share of crawled pages that have the issue.
PAGE_ISSUE_WEIGHTS: dict[str, int] = {
    "broken_link": 15,
    "missing_title": 12,
    "slow_response": 10,
    "missing_h1": 8,
    "duplicate_title": 8,
    "missing_meta_description": 8,
    "redirect_chain": 7,
    "missing_alt": 6,
    "duplicate_meta_description": 5,
    "missing_canonical": 5,
    "heavy_page": 5,
    "multiple_h1": 4,
    "title_too_long": 4,
    "meta_description_too_long": 3,
}
# Site-level findings, each taking its points off once.
SITE_ISSUE_POINTS: dict[str, int] = {"missing_robots_txt": 2, "missing_sitemap": 3}
ISSUE_TYPES = frozenset(PAGE_ISSUE_WEIGHTS) | frozenset(SITE_ISSUE_POINTS)

_SKIPPED_TEXT = frozenset({"script", "style", "noscript", "template", "svg"})
# Elements that separate words (text inside inline ones, like <b>, runs on); a link is its
# own run of words too.
_BLOCKS = frozenset(
    "a address article aside blockquote dd div dl dt fieldset figcaption figure footer form "
    "h4 h5 h6 header hr li main nav ol p pre section table tbody td tfoot th thead tr ul "
    "button label option select textarea img".split()
)
_BREAK = "\x00"
# Links longer than this are not followed (nor stored).
MAX_URL_CHARS = 2000
_HEADINGS = ("h1", "h2", "h3")
_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The absolute http(s) URL ``url`` names (relative to ``base``), without fragment, with
    a lower-case scheme and host, no default port and ``/`` for an empty path; None for
    other schemes (mailto:, javascript:, data:)."""
    joined = urljoin(base, url.strip()) if base else url.strip()
    joined, _ = urldefrag(joined)
    try:
        parts = urlsplit(joined)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))


def site_of(url: str) -> str:
    """The origin (scheme://host[:port]) a URL belongs to; a crawl stays within one."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def words(text: str) -> list[str]:
    """The words of ``text``, case-folded: runs of letters and digits."""
    return _WORD.findall(text.casefold())


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


class KeywordHits(_Model):
    """Occurrences of one keyword in each part of one page."""

    title: int = 0
    h1: int = 0
    h2: int = 0
    h3: int = 0
    body: int = 0
    url: int = 0


class PageFacts(_Model):
    """What one crawled URL answered, and its SEO facts when it is an HTML page."""

    url: str  # as requested (the crawl's frontier key)
    final_url: str  # after redirects
    depth: int
    status: int  # of the last hop; 0 when no answer came
    redirects: list[tuple[str, int]] = Field(default_factory=list)  # (url, status) per hop
    error: str | None = None  # why no answer came
    content_type: str = ""
    bytes: int = 0
    response_ms: int = 0
    html: bool = False
    title: str | None = None
    meta_description: str | None = None
    h1: list[str] = Field(default_factory=list)
    canonical: str | None = None
    links: list[str] = Field(default_factory=list)  # internal, absolute, in page order
    images_without_alt: list[str] = Field(default_factory=list)
    word_count: int = 0  # of headings and body text (keyword density's denominator)
    keywords: dict[str, KeywordHits] = Field(default_factory=dict)

    @property
    def analysed(self) -> bool:
        """A page the audit judges: an HTML page that answered 200."""
        return self.html and self.status == 200


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] | None = None
        self.meta_description: str | None = None
        self.canonical: str | None = None
        self.base: str | None = None
        self.hrefs: list[str] = []
        self.images_without_alt: list[str] = []
        self.headings: dict[str, list[list[str]]] = {tag: [] for tag in _HEADINGS}
        self.body: list[str] = []
        self._skipping = 0
        self._in_title = False
        self._heading: str | None = None

    def _break(self, mark: str = _BREAK) -> None:
        """A block boundary: words on either side of it are separate, and no keyword match
        spans it (a line break only separates the words)."""
        if self._heading is not None:
            self.headings[self._heading][-1].append(mark)
        elif not self._in_title:
            self.body.append(mark)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value for name, value in attrs}
        if tag == "br":
            self._break(" ")
        elif tag in _BLOCKS:
            self._break()
        if tag in _SKIPPED_TEXT:
            self._skipping += 1
        elif tag == "title" and self.title is None:
            self.title, self._in_title = [], True
        elif tag == "meta" and (values.get("name") or "").lower() == "description":
            if self.meta_description is None:
                self.meta_description = values.get("content") or ""
        elif tag == "link" and "canonical" in (values.get("rel") or "").lower().split():
            if self.canonical is None and values.get("href"):
                self.canonical = values["href"]
        elif tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"]
        elif tag == "a" and values.get("href"):
            self.hrefs.append(values["href"] or "")
        elif tag == "img" and "alt" not in values:
            self.images_without_alt.append(values.get("src") or "")
        elif tag in _HEADINGS and self._heading is None:
            self._heading = tag
            self.headings[tag].append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._break()
        if tag in _SKIPPED_TEXT and self._skipping:
            self._skipping -= 1
        elif tag == "title":
            self._in_title = False
        elif tag == self._heading:
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title and self.title is not None:
            self.title.append(data)
        elif self._heading is not None:
            self.headings[self._heading][-1].append(data)
        else:
            self.body.append(data)


def _segments(texts: Iterable[str]) -> list[list[str]]:
    return [words(run) for text in texts for run in text.split(_BREAK)]


def _count(needle: Sequence[str], haystack: Sequence[str]) -> int:
    """Non-overlapping occurrences of the word sequence ``needle`` in ``haystack``."""
    if not needle:
        return 0
    found, i, n = 0, 0, len(needle)
    while i <= len(haystack) - n:
        if list(haystack[i : i + n]) == list(needle):
            found, i = found + 1, i + n
        else:
            i += 1
    return found


def parse_page(
    *,
    url: str,
    final_url: str,
    depth: int,
    status: int,
    body: bytes,
    content_type: str,
    response_ms: int,
    redirects: Sequence[tuple[str, int]] = (),
    keywords: Sequence[str] = (),
) -> PageFacts:
    """The facts of one fetched page: only the links on ``final_url``'s own site are kept."""
    is_html = "html" in content_type.lower()
    facts = PageFacts(
        url=url,
        final_url=final_url,
        depth=depth,
        status=status,
        redirects=list(redirects),
        content_type=content_type,
        bytes=len(body),
        response_ms=response_ms,
        html=is_html,
    )
    if not is_html or status != 200:
        return facts
    parser = _PageParser()
    parser.feed(body.decode(_charset(content_type), errors="replace"))
    parser.close()
    base = normalize_url(parser.base, final_url) if parser.base else final_url
    site = site_of(final_url)
    links: dict[str, None] = {}
    for href in parser.hrefs:
        target = normalize_url(href, base or final_url)
        if target is not None and site_of(target) == site and len(target) <= MAX_URL_CHARS:
            links[target] = None
    raw_headings = {
        tag: ["".join(parts) for parts in found] for tag, found in parser.headings.items()
    }
    headings = {
        tag: [_collapse(text.replace(_BREAK, " ")) for text in found]
        for tag, found in raw_headings.items()
    }
    title = _collapse("".join(parser.title)) if parser.title is not None else None
    # Each part of the page as runs of words between block boundaries.
    sections: dict[str, list[list[str]]] = {
        "title": [words(title or "")],
        **{tag: _segments(found) for tag, found in raw_headings.items()},
        "body": _segments(["".join(parser.body)]),
        "url": [words(urlsplit(final_url).path)],
    }
    hits = {
        keyword: KeywordHits(
            **{
                part: sum(_count(words(keyword), run) for run in runs)
                for part, runs in sections.items()
            }
        )
        for keyword in keywords
    }
    in_text = (*_HEADINGS, "body")
    canonical = normalize_url(parser.canonical, final_url) if parser.canonical else None
    return facts.model_copy(
        update={
            "title": title,
            "meta_description": (
                _collapse(parser.meta_description) if parser.meta_description is not None else None
            ),
            "h1": headings["h1"],
            "canonical": canonical,
            "links": list(links),
            "images_without_alt": parser.images_without_alt,
            "word_count": sum(len(run) for part in in_text for run in sections[part]),
            "keywords": hits,
        }
    )


def _charset(content_type: str) -> str:
    match = re.search(r"charset=([\w-]+)", content_type, re.IGNORECASE)
    if match is None:
        return "utf-8"
    try:
        return codecs.lookup(match.group(1)).name
    except LookupError:
        return "utf-8"  # an unknown charset: read it as the web's default


# --- the audit ------------------------------------------------------------------------


class SeoIssue(_Model):
    page: str
    type: str
    detail: str


class PageReport(_Model):
    """One crawled URL as the report shows it."""

    url: str
    depth: int
    status: int
    redirect_chain: list[tuple[str, int]]
    response_ms: int
    bytes: int
    title: str | None
    meta_description: str | None
    h1_count: int
    canonical: str | None
    broken_links: list[str]
    images_without_alt: int
    issues: list[str]
    error: str | None = None


class SiteFacts(_Model):
    """What the crawl learnt about the site as a whole."""

    root: str
    robots_txt: bool
    sitemap: bool
    skipped_by_robots: int = 0
    limit_reached: Literal["pages", "depth"] | None = None


class AuditReport(_Model):
    url: str
    pages_crawled: int
    score: int
    issues: list[SeoIssue]
    issue_counts: dict[str, int]
    pages: list[PageReport]
    site: SiteFacts


def _duplicates(pages: Iterable[PageFacts], text_of: str) -> dict[str, list[str]]:
    """Pages sharing a non-blank title or description: page URL -> the others."""
    groups: dict[str, list[str]] = defaultdict(list)
    for page in pages:
        text = getattr(page, text_of)
        if text:
            groups[text.casefold()].append(page.final_url)
    return {
        url: [other for other in group if other != url]
        for group in groups.values()
        if len(group) > 1
        for url in group
    }


def audit(start_url: str, crawled: Sequence[PageFacts], site: SiteFacts) -> AuditReport:
    """The issues of a crawl and its score (docs/seo.md):

    score = 100 - sum(weight[type] * pages with type / pages analysed)
                - sum(points[finding] for each site-level finding), clamped to 0..100.
    """
    # The answer each URL ended in, through its redirects, to tell broken links.
    outcome: dict[str, int] = {}
    for page in crawled:
        outcome[page.url] = outcome[page.final_url] = page.status
        for hop_url, _ in page.redirects:
            outcome.setdefault(hop_url, page.status)
    analysed = {p.final_url: p for p in crawled if p.analysed}
    titles = _duplicates(analysed.values(), "title")
    descriptions = _duplicates(analysed.values(), "meta_description")

    issues: list[SeoIssue] = []
    pages: list[PageReport] = []
    for page in crawled:
        if page.analysed and analysed.get(page.final_url) is not page:
            continue  # another requested URL redirected to the same page
        found: list[SeoIssue] = []
        broken: list[str] = []
        if page.analysed:
            found, broken = _page_issues(page, outcome, titles, descriptions)
        issues.extend(found)
        pages.append(
            PageReport(
                url=page.final_url,
                depth=page.depth,
                status=page.status,
                redirect_chain=page.redirects,
                response_ms=page.response_ms,
                bytes=page.bytes,
                title=page.title,
                meta_description=page.meta_description,
                h1_count=len(page.h1),
                canonical=page.canonical,
                broken_links=broken,
                images_without_alt=len(page.images_without_alt),
                issues=sorted({issue.type for issue in found}),
                error=page.error,
            )
        )
    if not site.robots_txt:
        issues.append(
            SeoIssue(
                page=site.root, type="missing_robots_txt", detail="/robots.txt answered no file"
            )
        )
    if not site.sitemap:
        issues.append(
            SeoIssue(
                page=site.root,
                type="missing_sitemap",
                detail="no Sitemap in robots.txt and no /sitemap.xml",
            )
        )
    return AuditReport(
        url=start_url,
        pages_crawled=len(crawled),
        score=score(issues, analysed_pages=len(analysed)),
        issues=issues,
        issue_counts=dict(Counter(issue.type for issue in issues)),
        pages=pages,
        site=site,
    )


def score(issues: Sequence[SeoIssue], *, analysed_pages: int) -> int:
    affected: dict[str, set[str]] = defaultdict(set)
    for issue in issues:
        affected[issue.type].add(issue.page)
    if not analysed_pages:
        return 0  # nothing judged: no page to vouch for
    penalty = 0.0
    for kind, weight in PAGE_ISSUE_WEIGHTS.items():
        penalty += weight * len(affected.get(kind, ())) / analysed_pages
    penalty += sum(points for kind, points in SITE_ISSUE_POINTS.items() if affected.get(kind))
    return max(0, min(100, round(100 - penalty)))


def _page_issues(
    page: PageFacts,
    outcome: dict[str, int],
    titles: dict[str, list[str]],
    descriptions: dict[str, list[str]],
) -> tuple[list[SeoIssue], list[str]]:
    url = page.final_url
    found: list[SeoIssue] = []

    def add(kind: str, detail: str) -> None:
        found.append(SeoIssue(page=url, type=kind, detail=detail))

    if not page.title:
        add("missing_title", "no <title>" if page.title is None else "the <title> is blank")
    else:
        if len(page.title) > TITLE_MAX_CHARS:
            add("title_too_long", f"{len(page.title)} characters (at most {TITLE_MAX_CHARS})")
        if url in titles:
            add("duplicate_title", f"also the title of {', '.join(titles[url])}")
    if not page.meta_description:
        add(
            "missing_meta_description",
            "no meta description"
            if page.meta_description is None
            else "the meta description is blank",
        )
    else:
        if len(page.meta_description) > DESCRIPTION_MAX_CHARS:
            add(
                "meta_description_too_long",
                f"{len(page.meta_description)} characters (at most {DESCRIPTION_MAX_CHARS})",
            )
        if url in descriptions:
            add(
                "duplicate_meta_description",
                f"also the description of {', '.join(descriptions[url])}",
            )
    if not page.h1:
        add("missing_h1", "no <h1>")
    elif len(page.h1) > 1:
        add("multiple_h1", f"{len(page.h1)} <h1> elements")
    if page.canonical is None:
        add("missing_canonical", 'no <link rel="canonical">')
    if page.images_without_alt:
        shown = ", ".join(src or "(no src)" for src in page.images_without_alt[:5])
        add("missing_alt", f"{len(page.images_without_alt)} image(s) without alt: {shown}")
    if page.response_ms > SLOW_RESPONSE_MS:
        add("slow_response", f"{page.response_ms} ms (more than {SLOW_RESPONSE_MS} ms)")
    if page.bytes > HEAVY_PAGE_BYTES:
        add("heavy_page", f"{page.bytes} bytes of HTML (more than {HEAVY_PAGE_BYTES})")
    if len(page.redirects) > REDIRECT_HOPS_ALLOWED:
        chain = " -> ".join(f"{hop} ({status})" for hop, status in page.redirects)
        add("redirect_chain", f"reached through {len(page.redirects)} redirects: {chain}")
    broken = [link for link in page.links if outcome.get(link, 0) >= 400 and outcome[link] != 429]
    for link in broken:
        add("broken_link", f"{link} answered {outcome[link]}")
    return found, broken


# --- keyword analysis -----------------------------------------------------------------

# Points a page earns for a keyword (docs/seo.md): in the title, each heading level and the
# URL once each; in the body one per occurrence up to BODY_POINTS_CAP; minus STUFFING_PENALTY
# when the keyword's density passes STUFFING_DENSITY percent.
PLACEMENT_POINTS: dict[str, int] = {"title": 10, "h1": 6, "h2": 3, "h3": 2, "url": 4}
BODY_POINTS_CAP = 5
STUFFING_DENSITY = 5.0
STUFFING_PENALTY = 5


class KeywordOnPage(_Model):
    page: str
    hits: KeywordHits
    density: float  # percent of the page's words that are this keyword's
    score: int


class KeywordReport(_Model):
    keyword: str
    pages_with_keyword: int
    total_occurrences: int
    best_page: str | None
    best_score: int
    pages: list[KeywordOnPage]  # pages where it appears, best first


def density(hits: KeywordHits, keyword: str, word_count: int) -> float:
    if not word_count:
        return 0.0
    in_text = hits.h1 + hits.h2 + hits.h3 + hits.body
    return round(100 * in_text * len(words(keyword)) / word_count, 2)


def keyword_score(hits: KeywordHits, page_density: float) -> int:
    points = sum(p for part, p in PLACEMENT_POINTS.items() if getattr(hits, part) > 0)
    points += min(hits.body, BODY_POINTS_CAP)
    if page_density > STUFFING_DENSITY:
        points -= STUFFING_PENALTY
    return points


def rank_keywords(keywords: Sequence[str], crawled: Sequence[PageFacts]) -> list[KeywordReport]:
    """Per keyword, the pages it appears on and the best one: highest score, then higher
    density, then the shorter URL, then the URL in alphabetical order."""
    analysed = {p.final_url: p for p in crawled if p.analysed}
    reports = []
    for keyword in keywords:
        found: list[KeywordOnPage] = []
        for url, page in analysed.items():
            hits = page.keywords.get(keyword, KeywordHits())
            if not any(hits.model_dump().values()):
                continue
            page_density = density(hits, keyword, page.word_count)
            found.append(
                KeywordOnPage(
                    page=url,
                    hits=hits,
                    density=page_density,
                    score=keyword_score(hits, page_density),
                )
            )
        found.sort(key=lambda k: (-k.score, -k.density, len(k.page), k.page))
        best = found[0] if found and found[0].score > 0 else None
        reports.append(
            KeywordReport(
                keyword=keyword,
                pages_with_keyword=len(found),
                total_occurrences=sum(sum(k.hits.model_dump().values()) for k in found),
                best_page=best.page if best else None,
                best_score=best.score if best else 0,
                pages=found,
            )
        )
    return reports

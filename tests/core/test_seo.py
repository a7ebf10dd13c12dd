"""Page facts, the audit's rules and score, and keyword ranking (core/seo.py)."""

from __future__ import annotations

from core.seo import (
    KeywordHits,
    PageFacts,
    SiteFacts,
    audit,
    density,
    keyword_score,
    normalize_url,
    parse_page,
    rank_keywords,
)

SITE = "http://shop.test"
HTML = """<!doctype html><html><head>
<title> Cold Brew   Guide </title>
<meta name="description" content="How to make cold brew at home.">
<link rel="canonical" href="/guide">
<style>h1 { color: red }</style>
</head><body>
<h1>Cold brew</h1>
<p>Cold brew is coffee steeped cold. Our cold brew kit makes it easy.</p>
<h2>Why cold brew</h2><h3>Espresso</h3>
<a href="/about#team">About</a> <a href="guide?x=1">Self</a> <a href="mailto:a@b.c">Mail</a>
<a href="http://other.test/">Other</a> <a href="HTTP://SHOP.TEST:80/contact">Contact</a>
<img src="/a.png" alt="A cup"> <img src="/b.png" alt=""> <img src="/c.png">
<script>var cold = "brew";</script>
</body></html>"""


def _page(**kw: object) -> PageFacts:
    base = {
        "url": f"{SITE}/",
        "final_url": f"{SITE}/",
        "depth": 0,
        "status": 200,
        "html": True,
        "title": "Home",
        "h1": ["Shop"],
        "canonical": f"{SITE}/",
        "bytes": 1000,
        "response_ms": 50,
    }
    merged = {**base, **kw}
    merged.setdefault("meta_description", f"About {merged['final_url']}")
    return PageFacts.model_validate(merged)


def test_normalize_url():
    assert normalize_url("HTTP://Shop.Test:80") == "http://shop.test/"
    assert normalize_url("../b?q=1#frag", "https://x.test:8443/a/c") == "https://x.test:8443/b?q=1"
    assert normalize_url("javascript:void(0)", SITE) is None


def test_parse_page_reads_the_seo_facts_and_counts_keywords():
    facts = parse_page(
        url=f"{SITE}/guide",
        final_url=f"{SITE}/cold-brew-guide",
        depth=1,
        status=200,
        body=HTML.encode(),
        content_type="text/html; charset=utf-8",
        response_ms=12,
        keywords=["cold brew", "espresso"],
    )
    assert facts.title == "Cold Brew Guide"
    assert facts.meta_description == "How to make cold brew at home."
    assert facts.h1 == ["Cold brew"]
    assert facts.canonical == f"{SITE}/guide"
    assert facts.links == [f"{SITE}/about", f"{SITE}/guide?x=1", f"{SITE}/contact"]
    assert facts.images_without_alt == ["/c.png"]  # alt="" is a decorative image
    # Headings: "cold brew" (2) + "why cold brew" (3) + "espresso" (1); body: 13 words of
    # text and 5 of links.
    assert facts.word_count == 24
    assert facts.keywords["cold brew"] == KeywordHits(title=1, h1=1, h2=1, body=2, url=1)
    assert facts.keywords["espresso"] == KeywordHits(h3=1)


def test_keyword_density_and_score_follow_the_documented_formula():
    hits = KeywordHits(title=1, h1=1, h2=1, body=2, url=1)
    # (1 + 1 + 2) occurrences x 2 words / 19 words = 42.11 %: stuffing.
    assert density(hits, "cold brew", 19) == 42.11
    assert keyword_score(hits, 42.11) == 10 + 6 + 3 + 4 + 2 - 5
    assert keyword_score(KeywordHits(body=9), 1.0) == 5  # body points are capped


def test_audit_finds_each_rule_and_scores_by_the_share_of_pages():
    pages = [
        _page(),
        _page(
            url=f"{SITE}/a",
            final_url=f"{SITE}/a",
            depth=1,
            title=None,
            h1=[],
            links=[f"{SITE}/gone", f"{SITE}/old"],
        ),
        _page(
            url=f"{SITE}/b",
            final_url=f"{SITE}/b",
            depth=1,
            title="Home",
            h1=["x", "y"],
            meta_description="",
            canonical=None,
            response_ms=1500,
            bytes=600_000,
            images_without_alt=["/i.png"],
        ),
        _page(url=f"{SITE}/gone", final_url=f"{SITE}/gone", depth=2, status=404, html=True),
        _page(
            url=f"{SITE}/old",
            final_url=f"{SITE}/c",
            depth=2,
            redirects=[(f"{SITE}/old", 301), (f"{SITE}/older", 302)],
            title="C" * 61,
        ),
    ]
    site = SiteFacts(root=f"{SITE}/", robots_txt=False, sitemap=True)
    report = audit(f"{SITE}/", pages, site)
    found = {(issue.page.removeprefix(SITE), issue.type) for issue in report.issues}
    assert found == {
        ("/a", "missing_title"),
        ("/a", "missing_h1"),
        ("/a", "broken_link"),
        ("/", "duplicate_title"),
        ("/b", "duplicate_title"),
        ("/b", "multiple_h1"),
        ("/b", "missing_meta_description"),
        ("/b", "missing_canonical"),
        ("/b", "slow_response"),
        ("/b", "heavy_page"),
        ("/b", "missing_alt"),
        ("/c", "redirect_chain"),
        ("/c", "title_too_long"),
        ("/", "missing_robots_txt"),
    }
    broken = next(i for i in report.issues if i.type == "broken_link")
    assert broken.detail == f"{SITE}/gone answered 404"  # /old redirected to a good page
    # 4 pages judged (the 404 is not): weights x affected pages / 4, and 2 for robots.txt.
    penalty = (12 + 8 + 15) / 4 + 8 * 2 / 4 + (4 + 8 + 5 + 10 + 5 + 6) / 4 + (7 + 4) / 4 + 2
    assert report.score == round(100 - penalty)
    assert report.pages_crawled == 5
    assert report.issue_counts["duplicate_title"] == 2


def test_rank_keywords_picks_the_best_page_with_documented_tie_breaks():
    pages = [
        _page(
            url=f"{SITE}/x",
            final_url=f"{SITE}/x",
            word_count=100,
            keywords={"tea": KeywordHits(body=2)},
        ),
        _page(
            url=f"{SITE}/y",
            final_url=f"{SITE}/y",
            word_count=50,
            keywords={"tea": KeywordHits(body=2)},
        ),
        _page(
            url=f"{SITE}/z", final_url=f"{SITE}/z", word_count=50, keywords={"tea": KeywordHits()}
        ),
    ]
    (tea,) = rank_keywords(["tea"], pages)
    # Same score (2); /y has the higher density (4 % against 2 %).
    assert tea.best_page == f"{SITE}/y" and tea.best_score == 2
    assert [(k.page, k.density) for k in tea.pages] == [(f"{SITE}/y", 4.0), (f"{SITE}/x", 2.0)]
    assert tea.pages_with_keyword == 2 and tea.total_occurrences == 4
    (none,) = rank_keywords(["coffee"], pages)
    assert none.best_page is None and none.pages == []


def _facts(html: str, content_type: str = "text/html", keywords: tuple[str, ...] = ()) -> PageFacts:
    return parse_page(
        url=f"{SITE}/p",
        final_url=f"{SITE}/p",
        depth=0,
        status=200,
        body=html.encode(),
        content_type=content_type,
        response_ms=1,
        keywords=keywords,
    )


def test_words_split_at_block_elements_and_run_on_through_inline_ones():
    facts = _facts(
        "<h1>Cold<br>brew</h1><p>co<b>ld</b> brew</p><div>cold</div><div>brew</div>",
        keywords=("cold brew",),
    )
    assert facts.keywords["cold brew"] == KeywordHits(h1=1, body=1)


def test_an_unknown_charset_is_read_as_utf8():
    facts = _facts("<title>Caf\u00e9</title>", "text/html; charset=utf-8x")
    assert facts.title == "Caf\u00e9"


def test_nothing_judged_scores_zero_and_a_throttled_link_is_not_broken():
    site = SiteFacts(root=f"{SITE}/", robots_txt=True, sitemap=True)
    pdf = _page(html=False, content_type="application/pdf")
    assert audit(f"{SITE}/", [pdf], site).score == 0
    pages = [
        _page(links=[f"{SITE}/busy"]),
        _page(url=f"{SITE}/busy", final_url=f"{SITE}/busy", depth=1, status=429),
    ]
    assert [i.type for i in audit(f"{SITE}/", pages, site).issues] == []

"""Reading rendered pages the way a browser would, without a browser."""

from html.parser import HTMLParser


class InlineCodeFinder(HTMLParser):
    """Collects what a strict CSP would block: inline scripts, inline styles and event handlers."""

    def __init__(self):
        super().__init__()
        self.inline_scripts = 0
        self.style_elements = 0
        self.style_attributes = []
        self.event_handlers = []
        self.script_sources = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.script_sources.append(attributes["src"])
            else:
                self.inline_scripts += 1
        if tag == "style":
            self.style_elements += 1
        if "style" in attributes:
            self.style_attributes.append(tag)
        self.event_handlers += [name for name in attributes if name.startswith("on")]


def inline_code(html: str) -> InlineCodeFinder:
    finder = InlineCodeFinder()
    finder.feed(html)
    return finder

"""Let Markdown links reach a labelled section of another page: `[text](../book/pitfalls.ipynb#label)`.

MyST checks such a link against the heading anchors it generated itself (none, unless
`myst_heading_anchors` is set), so a link to a `(label)=` target before a heading was reported as
missing although the section carries that id in the HTML. This records every section id of a page
(labels included) as an anchor MyST may link to, so the `-n` build checks links to real ids.
"""
from docutils import nodes


def _record_section_ids(app, doctree):
    slugs = app.env.metadata[app.env.docname].setdefault("myst_slugs", {})
    for section in doctree.findall(nodes.section):
        title = section.next_node(nodes.title)
        for node_id in section["ids"]:
            slugs.setdefault(node_id, (section.line or 0, node_id, title.astext() if title else ""))


def setup(app):
    app.connect("doctree-read", _record_section_ids)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

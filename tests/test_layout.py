"""The package's house rules that a reader cannot see from one file: the constants sit at the
bottom, the TensorFlow twins are imported only from above, and cited documents exist."""

import ast
import pathlib
import re

import pytest

pytestmark = pytest.mark.backend_independent

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = REPO_ROOT / "keras_mt3"
# Packages below keras_mt3.tf_ops: none of them may import it.
BELOW_TF_OPS = ("codec", "preprocessing", "layers", "models")


def imported_modules(path):
    """Absolute names of every module `path` imports (at any depth of the file)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_constants_import_nothing_from_the_package():
    imports = imported_modules(PACKAGE / "constants.py")
    assert not {name for name in imports if name.split(".")[0] == "keras_mt3"}, imports


@pytest.mark.parametrize("package", BELOW_TF_OPS)
def test_tf_ops_are_not_imported_from_below(package):
    offenders = {
        str(path.relative_to(REPO_ROOT))
        for path in (PACKAGE / package).rglob("*.py")
        if any(name.startswith("keras_mt3.tf_ops") for name in imported_modules(path))
    }
    assert not offenders


def markdown_anchors(path):
    """GitHub's anchors of the headings of a Markdown file."""
    anchors = set()
    for line in path.read_text().splitlines():
        if match := re.match(r"^#{1,6}\s+(.*?)\s*$", line):
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_cited_document_sections_exist():
    cited = re.compile(r"docs/([\w.-]+\.md)#([\w-]+)")
    sources = [*PACKAGE.rglob("*.py"), *REPO_ROOT.glob("tests/**/*.py"), *REPO_ROOT.glob("*.md"),
               *REPO_ROOT.glob("docs/*.md"), *REPO_ROOT.glob("serving/*.md")]
    citations = {
        (str(source.relative_to(REPO_ROOT)), document, anchor)
        for source in sources
        for document, anchor in cited.findall(source.read_text())
    }
    assert any(document == "mt3_details.md" for _, document, _ in citations)
    missing = [
        citation
        for citation in sorted(citations)
        if not (REPO_ROOT / "docs" / citation[1]).is_file()
        or citation[2] not in markdown_anchors(REPO_ROOT / "docs" / citation[1])
    ]
    assert not missing

"""The README and docs/ against the code: the config tree, every option they name, the links.
Fast: reads files only."""

import dataclasses
import re

import pytest

from ganrun.regularization import Regularization
from ganrun.trainers.options import TrainOptions
from tests.conftest import CONFIG_DIR, ROOT, group_options

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GROUPS = ("data", "model", "loss", "optimizer", "experiment", "evaluator", "hparams_search")
# Deliberately wrong examples (of what exits 2), and file names that look like keys.
WRONG_ON_PURPOSE = {"model=nope", "train.stepz", "train.yaml", "train.log"}
REQUIRED_PAGES = ("image-gans", "metrics", "text", "sweeps", "scaling", "speed", "reliability",
                  "architecture")


def _text(path) -> str:
    return path.read_text(encoding="utf-8")


def _readme_tree() -> dict[str, set[str]]:
    """The README's config tree: {group/ or file: options} (continuation lines start "|")."""
    block = _text(ROOT / "README.md").split("```\nconfigs/\n", 1)[1].split("```", 1)[0]
    tree, last = {}, None
    for line in block.splitlines():
        name, _, rest = line.strip().partition(" ")
        if name == "|" or not name:  # a continuation of the previous group's options
            name, rest = last, line
        else:
            last = name
        words = set(re.findall(r"[a-z_0-9]+", rest.split("  ")[0] if name.endswith(".yaml")
                                                 else rest))
        tree.setdefault(name, set()).update(words if name.endswith("/") else set())
    return tree


def test_readme_config_tree_is_the_config_directory():
    tree = _readme_tree()
    groups = {p.name + "/" for p in CONFIG_DIR.iterdir() if p.is_dir()}
    files = {p.name for p in CONFIG_DIR.glob("*.yaml")}
    assert set(tree) == groups | files
    for group in groups:
        expected = {p.stem if p.suffix == ".yaml" else p.name
                    for p in (CONFIG_DIR / group).iterdir()}
        assert tree[group] == expected, group


def test_docs_name_only_existing_group_options():
    pattern = re.compile(r"(?<![\w./])(" + "|".join(GROUPS) + r")=([a-z_0-9,]+)")
    for page in PAGES:
        for group, options in pattern.findall(_text(page)):
            for option in filter(None, options.split(",")):
                if f"{group}={option}" in WRONG_ON_PURPOSE:
                    continue
                assert (CONFIG_DIR / group / f"{option}.yaml").is_file(), \
                    f"{page.name} names {group}={option}, which configs/{group}/ lacks"


@pytest.mark.parametrize("node, cls", [("train", TrainOptions), ("regularize", Regularization)])
def test_docs_name_only_existing_keys(node, cls):
    fields = {field.name for field in dataclasses.fields(cls)}
    for page in PAGES:
        for key in re.findall(rf"(?<![\w./]){node}\.([a-z_0-9]+)", _text(page)):
            if f"{node}.{key}" in WRONG_ON_PURPOSE:
                continue
            assert key in fields, f"{page.name} names {node}.{key}, which {cls.__name__} lacks"


def test_every_group_option_appears_in_the_docs():
    text = "\n".join(_text(page) for page in PAGES)
    for group in GROUPS:
        for option in group_options(group):
            assert re.search(rf"\b{option}\b", text), f"{group}={option} is in no doc page"


def test_readme_is_short_and_links_every_page():
    readme = _text(ROOT / "README.md")
    assert len(readme.encode()) <= 20_000
    for page in REQUIRED_PAGES:
        assert (ROOT / "docs" / f"{page}.md").is_file()
        assert f"docs/{page}.md" in readme


def test_relative_links_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", _text(page)):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"

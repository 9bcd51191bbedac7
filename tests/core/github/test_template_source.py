"""core/github/template_repo.py against the local GitHub stand-in: revisions per platform from one pinned
head, checkouts verified blob by blob and written whole or not at all."""

from __future__ import annotations

import pytest

from psp_assets.core.errors import TemplateError
from psp_assets.core.github.template_repo import TemplateRepo, TemplateRepoClient
from tests.support.fake_github import FakeGitHub

OWNER, NAME, TOKEN = "psp", "templates", "ghp_reader_0123456789abcdef"
FILES = {
    "templates/magento2/template.yaml": b"platform: magento2\n",
    "templates/magento2/etc/module.xml.j2": b"<config/>\n",
    "templates/woocommerce/template.yaml": b"platform: woocommerce\n",
    "templates/_shared/php-core/Signature.php.j2": b"<?php\n",
    "README.md": b"# templates\n",
}


def client(fake_github: FakeGitHub) -> TemplateRepoClient:
    return TemplateRepoClient(TemplateRepo(f"{OWNER}/{NAME}", base_url=fake_github.base_url), TOKEN)


@pytest.fixture
def repo(fake_github: FakeGitHub) -> FakeGitHub:
    fake_github.add_repo(OWNER, NAME, token=TOKEN)
    fake_github.commit_files(OWNER, NAME, FILES, "import")
    return fake_github


def test_each_platform_names_the_commits_that_last_changed_it_and_the_shared_files(repo: FakeGitHub):
    first = client(repo).revisions(["magento2", "woocommerce", "shopify"])
    assert set(first) == {"magento2", "woocommerce"}  # shopify has no folder and never had one
    m2 = repo.commit_files(OWNER, NAME, {"templates/magento2/etc/module.xml.j2": b"<config>2</config>\n"}, "m2")
    readme = repo.commit_files(OWNER, NAME, {"README.md": b"# moved on\n"}, "docs")
    later = client(repo).revisions(["magento2", "woocommerce"])
    assert later["magento2"].commit.sha == m2.sha and later["magento2"].head == readme.sha
    assert later["woocommerce"].key == first["woocommerce"].key
    assert later["magento2"].shared and later["magento2"].shared.sha == first["magento2"].commit.sha


def test_a_checkout_holds_the_platform_and_the_shared_files_exactly(repo: FakeGitHub, tmp_path):
    source = client(repo)
    revision = source.revisions(["magento2"])["magento2"]
    root = source.checkout(revision, tmp_path)
    written = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert written == ["_shared/php-core/Signature.php.j2", "magento2/etc/module.xml.j2", "magento2/template.yaml"]
    assert (root / "magento2/etc/module.xml.j2").read_bytes() == FILES["templates/magento2/etc/module.xml.j2"]
    before = len(repo.requests_to("GET", r"/git/blobs/"))
    assert source.checkout(revision, tmp_path) == root  # fetched once, reused after
    assert len(repo.requests_to("GET", r"/git/blobs/")) == before


def test_a_blob_that_does_not_match_its_object_id_leaves_no_checkout(repo: FakeGitHub, tmp_path):
    stored = repo.repos[(OWNER, NAME)]
    sha = stored.commits[stored.branches["main"]].files["templates/magento2/etc/module.xml.j2"]
    stored.blobs[sha] = b"<config>tampered</config>\n"
    source = client(repo)
    with pytest.raises(TemplateError, match=r"templates/magento2/etc/module.xml.j2: content does not match"):
        source.checkout(source.revisions(["magento2"])["magento2"], tmp_path)
    assert not any(p.name == "magento2" for p in tmp_path.rglob("*"))


def test_a_server_error_is_retried_and_a_missing_branch_is_named(repo: FakeGitHub, tmp_path):
    fault = repo.inject("GET", r"/git/blobs/", status=502, times=1)
    source = client(repo)
    root = source.checkout(source.revisions(["magento2"])["magento2"], tmp_path)
    assert fault.hits == 1 and (root / "magento2/template.yaml").is_file()
    missing = TemplateRepoClient(TemplateRepo(f"{OWNER}/{NAME}", branch="release", base_url=repo.base_url), TOKEN)
    with pytest.raises(TemplateError, match=rf"{OWNER}/{NAME}@release .*HTTP 404"):
        missing.revisions(["magento2"])

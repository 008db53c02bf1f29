"""Put MathJax beside the book, so that its formulas render without a third-party server.

Downloads MathJax 3.2.2 from the npm registry (once), checks its SHA-256, and unpacks the
script the book loads (``tex-chtml.js``), the TeX extensions it loads on demand and its web
fonts into ``book/_static/mathjax``.
The book's ``_config.yml`` points Sphinx's ``mathjax_path`` there. Readers of the built book
then get the formulas from the book's own site, and a book built on a machine without internet
shows them too.

    python tools/fetch_mathjax.py
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "book" / "_static" / "mathjax"
VERSION = "3.2.2"
URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{VERSION}.tgz"
SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
WANTED = (
    "package/es5/tex-chtml.js",
    "package/es5/input/tex/extensions/",  # loaded on demand (\\boldsymbol, ...)
    "package/es5/output/chtml/fonts/woff-v2/",
    "package/LICENSE",
)


def main() -> int:
    marker = TARGET / "FETCHED"  # what was unpacked; a change of WANTED fetches again
    if marker.exists() and marker.read_text() == f"{VERSION} {WANTED}":
        return 0
    try:
        with urllib.request.urlopen(URL, timeout=60) as response:
            archive = response.read()
    except OSError as error:
        print(f"could not download MathJax from {URL}: {error}", file=sys.stderr)
        print(
            f"the book's formulas need it: download that file by hand, unpack its "
            f"package/es5/tex-chtml.js and package/es5/output/ into {TARGET}",
            file=sys.stderr,
        )
        return 1
    digest = hashlib.sha256(archive).hexdigest()
    if digest != SHA256:
        print(f"MathJax archive has SHA-256 {digest}, expected {SHA256}", file=sys.stderr)
        return 1
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(WANTED):
                relative = member.name.removeprefix("package/").removeprefix("es5/")
                path = TARGET / relative  # the licence travels with the script (Apache 2.0)
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                path.write_bytes(source.read())
    marker.write_text(f"{VERSION} {WANTED}")
    print(f"MathJax {VERSION} is in {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

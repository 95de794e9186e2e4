"""Download a source distribution from the configured package index.

Usage: python tools/fetch_sdist.py NAME VERSION SHA256 DEST

Reads the index from ``PIP_INDEX_URL`` (default https://pypi.org/simple) and
verifies the sha256 before writing DEST.
"""
import hashlib
import os
import re
import sys
import urllib.parse
import urllib.request


def main(name: str, version: str, sha256: str, dest: str) -> None:
    index = os.environ.get('PIP_INDEX_URL', 'https://pypi.org/simple')
    index = index.rstrip('/')
    page = urllib.request.urlopen(f'{index}/{name}/', timeout=120)
    page = page.read().decode()
    sdist = re.escape(f'{name}-{version}.tar.gz')
    pattern = rf'href="([^"]*{sdist})(#[^"]*)?"'
    match = re.search(pattern, page)
    if match is None:
        sys.exit(f'{name}-{version}.tar.gz is not listed on {index}/{name}/')
    url = urllib.parse.urljoin(f'{index}/{name}/', match.group(1))
    data = urllib.request.urlopen(url, timeout=600).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        sys.exit(f'sha256 mismatch for {url}: expected {sha256}, got {digest}')
    with open(dest, 'wb') as f:
        f.write(data)
    print(f'downloaded {url} ({len(data) / 1e6:.1f} MB)')


if __name__ == '__main__':
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    main(*sys.argv[1:])

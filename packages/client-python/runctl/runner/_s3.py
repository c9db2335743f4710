"""``s3://bucket/prefix`` stores from Python with the standard library: S3's REST API
signed with AWS Signature Version 4 (one PUT per object, GET, HEAD, DELETE,
ListObjectsV2), for the Runner's objects on machines without a shared filesystem.

Keys sit under the URL's prefix exactly as runctl's Node ``s3://`` ArtifactStore
puts them (``s3://b/p`` + ``bundles/k.tar.gz`` → key ``p/bundles/k.tar.gz``).
Settings, as the AWS tools name them: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``; region ``AWS_REGION`` /
``AWS_DEFAULT_REGION`` (default ``us-east-1``); endpoint ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` (an S3-compatible store, addressed path-style), else AWS
(virtual-hosted). Profiles and instance roles are not read: pass keys by env.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

from ._store import StoreError, _check_key

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


class S3Store:
    """An ``s3://bucket/prefix`` store (see the module's docstring for settings)."""

    def __init__(self, url: str, env: Optional[Dict[str, str]] = None) -> None:
        env = dict(os.environ if env is None else env)
        m = re.match(r"^s3://([^/]+)(?:/(.*))?$", url)
        if not m or not _BUCKET.match(m.group(1)):
            raise StoreError("not an S3 URL: %s" % url, code="s3_bad_url", hint="write s3://BUCKET/optional/prefix")
        self.url = url
        self.bucket = m.group(1)
        prefix = m.group(2) or ""
        self.root = prefix if prefix == "" or prefix.endswith("/") else prefix + "/"
        self.access_key = env.get("AWS_ACCESS_KEY_ID") or ""
        self.secret_key = env.get("AWS_SECRET_ACCESS_KEY") or ""
        self.session_token = env.get("AWS_SESSION_TOKEN") or None
        if not self.access_key or not self.secret_key:
            raise StoreError(
                "no AWS credentials for %s" % url,
                code="s3_no_credentials",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary keys)",
            )
        self.region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            parts = urllib.parse.urlsplit(endpoint.rstrip("/"))
            self._scheme, self._host = parts.scheme, parts.netloc
            self._base_path = "/" + self.bucket
        else:
            self._scheme, self._host = "https", "%s.s3.%s.amazonaws.com" % (self.bucket, self.region)
            self._base_path = ""
        handlers = [urllib.request.ProxyHandler({})] if self._host.split(":")[0] in ("127.0.0.1", "localhost", "[::1]") else []
        self._opener = urllib.request.build_opener(*handlers)

    # ------------------------------------------------------------ signing

    def _request(
        self, method: str, key: Optional[str], query: Optional[Dict[str, str]] = None, body: bytes = b""
    ) -> Tuple[int, bytes]:
        path = self._base_path + ("/" + _quote(key, safe="-_.~/") if key is not None else "/")
        query = query or {}
        canonical_query = "&".join("%s=%s" % (_quote(k), _quote(v)) for k, v in sorted(query.items()))
        payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        headers = {"host": self._host, "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
        if self.session_token:
            headers["x-amz-security-token"] = self.session_token
        headers["Authorization"] = self.authorization(method, path, canonical_query, headers, payload_hash, amz_date)
        del headers["host"]
        url = "%s://%s%s%s" % (self._scheme, self._host, path, "?" + canonical_query if canonical_query else "")
        request = urllib.request.Request(url, data=body if method == "PUT" else None, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            data = exc.read()
            exc.close()
            return exc.code, data
        except (urllib.error.URLError, OSError) as exc:
            raise StoreError("cannot reach %s for %s: %s" % (self._host, self.url, exc), code="s3_unreachable") from exc

    def _fail(self, what: str, status: int, body: bytes) -> StoreError:
        code = ""
        try:
            code = ET.fromstring(body).findtext("Code") or ""
        except ET.ParseError:
            pass
        return StoreError("%s on %s: HTTP %d %s" % (what, self.url, status, code), code="s3_error")

    def authorization(
        self, method: str, path: str, canonical_query: str, headers: Dict[str, str], payload_hash: str, amz_date: str
    ) -> str:
        """The SigV4 ``Authorization`` header; ``headers`` (lower-case names, ``host`` included) are all signed."""
        names = sorted(headers)
        canonical = "\n".join(
            [
                method,
                path,
                canonical_query,
                "".join("%s:%s\n" % (n, headers[n].strip()) for n in names),
                ";".join(names),
                payload_hash,
            ]
        )
        scope = "%s/%s/s3/aws4_request" % (amz_date[:8], self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        k = _hmac(("AWS4" + self.secret_key).encode(), amz_date[:8])
        for part in (self.region, "s3", "aws4_request"):
            k = _hmac(k, part)
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        return "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
            self.access_key,
            scope,
            ";".join(names),
            signature,
        )

    # ------------------------------------------------------------ the store

    def _key(self, key: str) -> str:
        return self.root + _check_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        status, body = self._request("PUT", self._key(key), body=data)
        if status != 200:
            raise self._fail("PUT %s" % key, status, body)

    def get_bytes(self, key: str) -> bytes:
        status, body = self._request("GET", self._key(key))
        if status == 404:
            raise StoreError("no object %s in %s" % (key, self.url), code="object_not_found")
        if status != 200:
            raise self._fail("GET %s" % key, status, body)
        return body

    def exists(self, key: str) -> bool:
        status, body = self._request("HEAD", self._key(key))
        if status == 404:
            return False
        if status != 200:
            raise self._fail("HEAD %s" % key, status, body)
        return True

    def delete(self, key: str) -> None:
        status, body = self._request("DELETE", self._key(key))
        if status not in (200, 204, 404):
            raise self._fail("DELETE %s" % key, status, body)

    def list(self, prefix: str) -> List[str]:
        keys: List[str] = []
        token: Optional[str] = None
        while True:
            query = {"list-type": "2", "prefix": self.root + prefix}
            if token:
                query["continuation-token"] = token
            status, body = self._request("GET", None, query=query)
            if status != 200:
                raise self._fail("LIST %s" % prefix, status, body)
            doc = ET.fromstring(body)
            for item in doc.iter(_NS + "Contents"):
                full = item.findtext(_NS + "Key") or ""
                keys.append(full[len(self.root) :])
            if (doc.findtext(_NS + "IsTruncated") or "false") != "true":
                return sorted(keys)
            token = doc.findtext(_NS + "NextContinuationToken")

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

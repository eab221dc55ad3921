"""The content worker's images and where they go: the renderer, the local blob store served by
the real API through signed links, and Azure Blob Storage on the stack's real Azurite."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import BlobServiceClient
from PIL import Image, ImageChops, ImageFont

from eventpipe.settings import Settings
from tests.conftest import LOGS
from workers.blobstore import (
    AzureBlobStore,
    BlobNameError,
    BlobUploadError,
    LocalBlobStore,
    sign_blob_name,
)
from workers.images import PLATFORM_SIZES, STYLES, FontError, FontMissingError, render

ROOT = Path(__file__).resolve().parent.parent
SEVEN_DAYS = 7 * 24 * 3600
TITLE = "가을맞이 신메뉴 출시 기념 할인 이벤트"
SUBTITLE = "10월 한 달 동안 방문하시는 모든 고객님께 음료 한 잔을 드립니다"
STORE = "행복한 분식 강남점"


@pytest.fixture(scope="module")
def font() -> str:
    return Settings().image_font_path


def _png(title: str = TITLE, style: str = "SIMPLE", platform: str = "INSTAGRAM",
         subtitle: str | None = SUBTITLE, font_path: str | None = None) -> Image.Image:
    data = render(title, subtitle, STORE, style, platform,
                  font_path or Settings().image_font_path)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


# ---------------------------------------------------------------- the renderer


def test_each_platform_gets_an_image_of_its_size() -> None:
    assert PLATFORM_SIZES["INSTAGRAM"] == (1080, 1080)  # square feed post
    for tv in ("URIDONGNE_TV", "GENIE_TV"):
        width, height = PLATFORM_SIZES[tv]
        assert width * 9 == height * 16  # 16:9
    assert set(PLATFORM_SIZES) == {"URIDONGNE_TV", "RINGO_BIZ", "GENIE_TV", "INSTAGRAM",
                                   "NAVER_BLOG", "KAKAO_CHANNEL"}
    for platform, size in PLATFORM_SIZES.items():
        assert _png(platform=platform).size == size, platform


def test_the_three_styles_look_different() -> None:
    images = {style: _png(style=style) for style in ("SIMPLE", "FANCY", "TRENDY")}
    assert set(STYLES) == set(images)
    for a, b in (("SIMPLE", "FANCY"), ("SIMPLE", "TRENDY"), ("FANCY", "TRENDY")):
        diff = ImageChops.difference(images[a], images[b]).convert("L")
        changed = sum(diff.point(lambda v: 255 if v > 40 else 0).histogram()[255:])
        assert changed > 0.5 * diff.width * diff.height, (a, b)  # most of the canvas differs


def test_the_nanum_font_has_real_hangul_glyphs(font: str, tmp_path: Path) -> None:
    nanum = ImageFont.truetype(font, 48)
    missing = bytes(nanum.getmask("\U000f0000"))  # a private-use character: no glyph
    assert nanum.getmask("맛").getbbox() is not None
    assert bytes(nanum.getmask("맛")) != missing
    # The same check tells a font without Hangul: Pillow's own Latin font.
    latin = tmp_path / "latin.ttf"
    latin.write_bytes(ImageFont.load_default(size=20).path.getvalue())
    plain = ImageFont.truetype(str(latin), 48)
    assert bytes(plain.getmask("맛")) == bytes(plain.getmask("\U000f0000"))


def test_the_korean_text_is_drawn(font: str) -> None:
    look = STYLES["SIMPLE"]
    with_text = _png()
    other_title = _png(title="겨울 한정 붕어빵 세트")
    no_subtitle = _png(subtitle=None)
    height = with_text.height
    # Another title changes pixels, in the upper part where the title is.
    box = ImageChops.difference(with_text, other_title).getbbox()
    assert box is not None and box[1] < height // 2
    assert ImageChops.difference(with_text, no_subtitle).getbbox() is not None
    # Strokes of the title's colour: thousands of pixels of the glyphs.
    raw, colour = with_text.tobytes(), bytes(look.title)
    title_pixels = sum(raw[i:i + 3] == colour for i in range(0, len(raw), 3))
    assert title_pixels > 2000
    # Drawn with the configured font: another Korean font (Myeongjo, a serif) changes them.
    myeongjo = str(Path(font).with_name("NanumMyeongjoBold.ttf"))
    assert ImageChops.difference(with_text, _png(font_path=myeongjo)).getbbox() is not None


def test_text_that_cannot_fit_is_wrapped_and_cut_not_spilled() -> None:
    long_title = "아주 긴 제목 " * 60
    image = _png(title=long_title, subtitle="설명 " * 200, platform="NAVER_BLOG")
    plain = _png(title="짧은 제목", subtitle=None, platform="NAVER_BLOG")
    width, height = image.size
    # The margins (left and right strips) stay as the background left them: nothing spilled.
    for strip in ((width - 40, 60, width, height - 60), (20, height - 30, width, height)):
        assert ImageChops.difference(image.crop(strip), plain.crop(strip)).getbbox() is None


def test_a_missing_font_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FontMissingError, match="fonts-nanum"):
        render(TITLE, None, STORE, "SIMPLE", "INSTAGRAM", str(tmp_path / "none.ttf"))


def test_a_font_without_hangul_is_refused(tmp_path: Path) -> None:
    latin = tmp_path / "latin.ttf"
    latin.write_bytes(ImageFont.load_default(size=20).path.getvalue())
    with pytest.raises(FontError, match="no Hangul"):
        render(TITLE, None, STORE, "SIMPLE", "INSTAGRAM", str(latin))


def test_characters_the_font_lacks_are_left_out(font: str) -> None:
    with_emoji = _png(title=f"🎉 {TITLE} 🎉")
    assert ImageChops.difference(with_emoji, _png(title=TITLE)).getbbox() is None


def test_unknown_style_or_platform_is_an_error(font: str) -> None:
    with pytest.raises(ValueError, match="style"):
        render(TITLE, None, STORE, "GLOSSY", "INSTAGRAM", font)
    with pytest.raises(ValueError, match="platform"):
        render(TITLE, None, STORE, "SIMPLE", "FAX", font)


# ---------------------------------------------------------------- the local store


@pytest.fixture
def local(api_url: str, process_env: dict[str, str], settings: Settings) -> Settings:
    """Settings that match the suite's API: its address, its BLOB_DIR, its signing key."""
    blob_dir = Path(process_env.get("BLOB_DIR", settings.blob_dir))
    return settings.model_copy(update={
        "public_base_url": api_url,
        "blob_dir": str(blob_dir if blob_dir.is_absolute() else ROOT / blob_dir),
        "blob_signing_key": process_env.get("BLOB_SIGNING_KEY", settings.blob_signing_key)})


@pytest.fixture
async def web(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An async client (the Azurite proxy below runs on the test's own event loop)."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


def _name() -> str:
    return f"test-content/{uuid.uuid4()}.png"


async def test_a_local_image_is_served_by_the_api_through_its_signed_url(
        local: Settings, web: httpx.AsyncClient) -> None:
    png = render(TITLE, SUBTITLE, STORE, "FANCY", "INSTAGRAM", local.image_font_path)
    name = _name()
    url = await LocalBlobStore(local).put(name, png, "image/png")
    assert url.startswith(f"{local.public_base_url}/blobs/{name}?token=")
    response = await web.get(url)
    assert response.status_code == 200, response.text
    assert response.content == png
    assert response.headers["content-type"] == "image/png"
    cache = response.headers["cache-control"]
    assert "private" in cache
    max_age = int(cache.split("max-age=")[1].split(",")[0])
    assert SEVEN_DAYS - 60 < max_age <= SEVEN_DAYS
    assert Image.open(io.BytesIO(response.content)).size == (1080, 1080)
    # Written whole (temporary file and rename): nothing else is left beside it.
    folder = Path(local.blob_dir, name).parent
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    # The token is a credential: the API's access log names the path, never the token.
    token = url.split("token=")[1]
    log = LOGS / "test-api.log"
    for _ in range(50):  # uvicorn writes the line after the answer
        if name in log.read_text():
            break
        await asyncio.sleep(0.1)
    assert name in log.read_text() and token not in log.read_text()


async def test_an_expired_link_is_refused(local: Settings, web: httpx.AsyncClient) -> None:
    name = _name()
    short = LocalBlobStore(local.model_copy(update={"blob_url_ttl_seconds": 1}))
    url = await short.put(name, b"\x89PNG old", "image/png")
    await asyncio.sleep(2.1)
    response = await web.get(url)
    assert response.status_code == 403
    assert response.json()["code"] == "BLOB_001"
    assert "만료" in response.json()["message"]
    # The image is still there: a fresh link serves it.
    assert (await web.get(LocalBlobStore(local).url(name))).content == b"\x89PNG old"


async def test_a_tampered_or_foreign_token_is_refused(local: Settings,
                                                      web: httpx.AsyncClient) -> None:
    name = _name()
    url = await LocalBlobStore(local).put(name, b"\x89PNG", "image/png")
    base, token = url.split("?token=")
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    other_name = sign_blob_name(local, _name())
    other_key = sign_blob_name(local.model_copy(update={"blob_signing_key": "x" * 32}), name)
    for bad in (tampered, other_name, other_key, "", "not-a-token"):
        response = await web.get(base, params={"token": bad})
        assert response.status_code == 403, bad
        assert response.json()["code"] == "BLOB_001"
    assert (await web.get(url)).status_code == 200


async def test_names_outside_the_store_are_refused(local: Settings, web: httpx.AsyncClient,
                                                   tmp_path: Path) -> None:
    store = LocalBlobStore(local)
    for bad in ("../escape.png", "/etc/escape.png", "a//b.png", "a/./b.png", "a\\..\\b.png", ""):
        with pytest.raises(BlobNameError):
            await store.put(bad, b"x", "image/png")
    # Even with a token signed for it, the API never serves a file outside BLOB_DIR.
    outside = "../../pyproject.toml"
    token = sign_blob_name(local, outside)
    response = await web.get(f"/blobs/%2E%2E%2F%2E%2E%2Fpyproject.toml?token={token}")
    assert response.status_code == 404
    assert response.json()["code"] == "BLOB_002"
    # Nor through a symbolic link inside it.
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    link = Path(local.blob_dir, "test-content", f"{uuid.uuid4()}.png")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)  # noqa: ASYNC240
    try:
        name = f"test-content/{link.name}"
        token = sign_blob_name(local, name)
        response = await web.get(f"/blobs/{name}", params={"token": token})
        assert response.status_code == 404
        assert b"secret" not in response.content
    finally:
        link.unlink()  # noqa: ASYNC240


async def test_a_missing_blob_is_404(local: Settings, web: httpx.AsyncClient) -> None:
    name = _name()
    response = await web.get(f"/blobs/{name}", params={"token": sign_blob_name(local, name)})
    assert response.status_code == 404
    assert response.json() == {"code": "BLOB_002", "message": "이미지를 찾을 수 없습니다"}


async def test_a_local_write_that_keeps_failing_is_tried_three_times(
        local: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    store = LocalBlobStore(local.model_copy(update={"blob_dir": str(not_a_folder)}),
                           retry_base_seconds=0.05)
    with caplog.at_level(logging.WARNING, logger="workers.blobstore"):
        with pytest.raises(BlobUploadError, match="after 3 attempt"):
            await store.put("a/b.png", b"x", "image/png")
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 2


# ---------------------------------------------------------------- Azure Blob Storage (Azurite)


@pytest.fixture
async def azure(settings: Settings) -> AsyncIterator[Settings]:
    """Settings for a container of this test's own on the stack's Azurite."""
    if not settings.azure_storage_connection_string:
        pytest.fail("AZURE_STORAGE_CONNECTION_STRING is not set: eval \"$(stack/stack.sh env)\"")
    container = f"test-{uuid.uuid4().hex[:12]}"
    yield settings.model_copy(update={"azure_container": container})
    async with BlobServiceClient.from_connection_string(
            settings.azure_storage_connection_string) as service:
        with contextlib.suppress(ResourceNotFoundError):  # (a test whose uploads all failed)
            await service.delete_container(container)


async def test_an_azure_image_is_fetched_through_its_sas_url(
        azure: Settings, web: httpx.AsyncClient) -> None:
    png = render(TITLE, SUBTITLE, STORE, "TRENDY", "GENIE_TV", azure.image_font_path)
    store = AzureBlobStore(azure)
    try:
        url = await store.put("event/1.png", png, "image/png")
    finally:
        await store.close()
    response = await web.get(url)
    assert response.status_code == 200, response.text
    assert response.content == png
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (1920, 1080)


async def test_the_container_is_private_and_the_sas_reads_only_for_seven_days(
        azure: Settings, web: httpx.AsyncClient) -> None:
    store = AzureBlobStore(azure)
    try:
        url = await store.put("event/2.png", b"\x89PNG private", "image/png")
        policy = await store.container.get_container_access_policy()
    finally:
        await store.close()
    assert policy["public_access"] is None
    blob_url, query = url.split("?", 1)
    anonymous = await web.get(blob_url)
    assert 400 <= anonymous.status_code < 500
    assert b"private" not in anonymous.content
    listing = await web.get(blob_url.rsplit("/", 2)[0], params={"restype": "container",
                                                            "comp": "list"})
    assert 400 <= listing.status_code < 500
    sas = {k: v[0] for k, v in parse_qs(query).items()}
    assert sas["sp"] == "r"
    expiry = datetime.strptime(sas["se"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(expiry - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
    # Read only: writing through the same SAS is refused.
    write = await web.put(url, content=b"overwritten", headers={"x-ms-blob-type": "BlockBlob"})
    assert write.status_code == 403
    assert (await web.get(url)).content == b"\x89PNG private"


async def test_a_public_container_is_refused(azure: Settings) -> None:
    async with BlobServiceClient.from_connection_string(
            azure.azure_storage_connection_string) as service:
        await service.create_container(azure.azure_container, public_access="blob")
    store = AzureBlobStore(azure, retry_base_seconds=0.01)
    try:
        with pytest.raises(BlobUploadError, match="public access"):
            await store.put("event/3.png", b"x", "image/png")
    finally:
        await store.close()


class BusyProxy:
    """A proxy to Azurite that answers its first `refuse` requests itself with 503 Server
    Busy (as Azure does when it throttles), then forwards. Every refused request is one
    upload attempt seen on the wire."""

    def __init__(self, target: tuple[str, int], refuse: int) -> None:
        self.target, self.refuse = target, refuse
        self.refused: list[float] = []  # when each refused request came

    async def __aenter__(self) -> BusyProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.refused) < self.refuse:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            self.refused.append(time.monotonic())
            writer.write(b"HTTP/1.1 503 Server Busy\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _through(settings: Settings, port: int) -> Settings:
    endpoint = urlsplit(_blob_endpoint(settings))
    moved = settings.azure_storage_connection_string.replace(
        f"{endpoint.hostname}:{endpoint.port}", f"127.0.0.1:{port}")
    assert moved != settings.azure_storage_connection_string
    return settings.model_copy(update={"azure_storage_connection_string": moved})


def _blob_endpoint(settings: Settings) -> str:
    fields = dict(part.split("=", 1) for part in
                  settings.azure_storage_connection_string.split(";") if part)
    return fields["BlobEndpoint"]


@pytest.fixture
def azurite(azure: Settings) -> tuple[str, int]:
    endpoint = urlsplit(_blob_endpoint(azure))
    assert endpoint.hostname and endpoint.port
    return endpoint.hostname, endpoint.port


async def test_an_upload_that_fails_twice_succeeds_on_the_third_attempt(
        azure: Settings, azurite: tuple[str, int], caplog: pytest.LogCaptureFixture,
        web: httpx.AsyncClient) -> None:
    async with BusyProxy(azurite, refuse=2) as proxy:
        store = AzureBlobStore(_through(azure, proxy.port), retry_base_seconds=0.1)
        try:
            with caplog.at_level(logging.WARNING, logger="workers.blobstore"):
                url = await store.put("event/4.png", b"\x89PNG third time", "image/png")
        finally:
            await store.close()
        assert len(proxy.refused) == 2
        assert (await web.get(url)).content == b"\x89PNG third time"
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 2


async def test_an_upload_that_keeps_failing_gives_up_after_three_backed_off_attempts(
        azure: Settings, azurite: tuple[str, int]) -> None:
    async with BusyProxy(azurite, refuse=1000) as proxy:
        store = AzureBlobStore(_through(azure, proxy.port), retry_base_seconds=0.1)
        try:
            with pytest.raises(BlobUploadError, match="after 3 attempt"):
                await store.put("event/5.png", b"x", "image/png")
        finally:
            await store.close()
    assert len(proxy.refused) == 3  # on the wire: three tries, no more
    first_wait = proxy.refused[1] - proxy.refused[0]
    second_wait = proxy.refused[2] - proxy.refused[1]
    assert first_wait >= 0.1
    assert second_wait >= 0.2  # exponential: twice the first


async def test_an_unreachable_store_is_tried_three_times(
        azure: Settings, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    store = AzureBlobStore(_through(azure, closed), retry_base_seconds=0.05)
    try:
        with caplog.at_level(logging.WARNING, logger="workers.blobstore"):
            with pytest.raises(BlobUploadError, match=r"after 3 attempt.*ServiceRequestError"):
                await store.put("event/6.png", b"x", "image/png")
    finally:
        await store.close()
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 2


async def test_a_refused_credential_is_not_retried(
        azure: Settings, caplog: pytest.LogCaptureFixture) -> None:
    wrong_key = azure.azure_storage_connection_string.replace(
        "AccountKey=", "AccountKey=" + "A" * 8, 1)
    wrong = azure.model_copy(update={"azure_storage_connection_string": wrong_key})
    store = AzureBlobStore(wrong, retry_base_seconds=5)  # a retry would make this test slow
    try:
        with caplog.at_level(logging.WARNING, logger="workers.blobstore"):
            with pytest.raises(BlobUploadError, match="after 1 attempt"):
                await store.put("event/7.png", b"x", "image/png")
    finally:
        await store.close()
    # No retry was even announced (each retry logs "attempt n of 3 failed ... retrying").
    assert sum("attempt" in r.getMessage() for r in caplog.records) == 0

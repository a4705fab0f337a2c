"""demo/web_demo.py: the page's functions, the running server through gradio_client, and
(where Chromium is installed) a real browser."""
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmrisfusion.apis import inference_model, init_model

pytest.importorskip('gradio', reason='the web demo needs pip install -e ".[web]"')

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_TIMEOUT = 180  # seconds to start the server (imports, model) on a loaded 2-core CPU


@pytest.fixture(scope='module')
def web_demo(load_repo_script):
    return load_repo_script('demo/web_demo.py')


@pytest.fixture(scope='module')
def page_logic(web_demo, tiny_ris_config_file, tiny_ris_checkpoint):
    return web_demo.WebDemo(init_model(tiny_ris_config_file, tiny_ris_checkpoint))


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory, data_dir):
    """Uploads the page must explain: not an image, 1x1, too wide, a pair of two sizes."""
    folder = tmp_path_factory.mktemp('bad')
    (folder / 'notes.png').write_text('this is a text file, not a PNG\n')
    cv2.imwrite(str(folder / 'one_pixel.png'), np.zeros((1, 1), np.uint8))
    cv2.imwrite(str(folder / 'wide.png'), np.zeros((16, 5000), np.uint8))
    cv2.imwrite(str(folder / 'other_size.png'), np.zeros((40, 50, 3), np.uint8))
    # A PNG that announces 30000 x 30000 px, the header of a decompression bomb.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))

    (folder / 'bomb.png').write_bytes(
        b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 30000, 30000, 8, 0,
                                                           0, 0, 0))
        + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))
    noise = np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / 'large.png'), noise)  # 1.4 MiB: above the server's 1 MiB
    return folder


def examples(web_demo):
    rows = web_demo.load_examples()
    assert len(rows) >= 3 and all(Path(p).is_file() for row in rows for p in row[:2])
    return rows


def test_run_loads_a_pair_once_for_many_expressions(web_demo, page_logic, monkeypatch):
    from mmrisfusion.datasets.transforms import LoadRISImages
    loads = []
    original = LoadRISImages.transform
    monkeypatch.setattr(LoadRISImages, 'transform',
                        lambda self, results: loads.append(1) or original(self, results))
    vis, ir, text = examples(web_demo)[0]
    *images, message, state = page_logic.run(vis, ir, text)
    assert 'images loaded in' in message and f'**{text}**' in message, message
    vis_preview, ir_preview, fused, overlay = images
    height, width = cv2.imread(vis).shape[:2]
    assert fused.shape == overlay.shape == (height, width, 3) and fused.dtype == np.uint8
    assert vis_preview.shape[2] == ir_preview.shape[2] == 3
    *again, message, same_state = page_logic.run(vis, ir, 'the red car', state)
    assert 'images reused from the previous request' in message, message
    assert same_state is state and len(loads) == 1
    other_vis, other_ir, other_text = examples(web_demo)[-1]
    *_, message, other_state = page_logic.run(other_vis, other_ir, other_text, state)
    assert 'images loaded in' in message and other_state is not state and len(loads) == 2
    # The reused pair answers as a fresh inference_model call does (a random tiny model may
    # give two expressions the same uint8 images, so the check is against the API, not them).
    expected = inference_model(page_logic.model, vis, ir, 'the red car')
    assert np.array_equal(again[2], expected.fused)
    assert np.array_equal(again[3], web_demo.overlay_mask(expected.fused, expected.mask))


@pytest.mark.parametrize('case,expected', [
    ('text', 'is not an image this page can read'),
    ('one_pixel', 'is 1x1 px; at least 16 px per side'),
    ('wide', 'is 5000x16 px; at most 4096 px per side'),
    ('bomb', 'has far more pixels than the 4096 px per side accepted'),
    ('gone', 'An uploaded file is gone from the server'),
    ('sizes', 'is 360x270 px but the infrared one is 50x40 px'),
    ('missing', 'Upload the infrared image'),
    ('large_file', 'at most 0.001 MiB'),
    ('no_text', 'Type an expression'),
])
def test_bad_uploads_get_a_message(web_demo, page_logic, bad_files, data_dir, case, expected):
    vis = str(data_dir / 'ivif' / 'tno' / 'vi' / '20.png')
    ir = str(data_dir / 'ivif' / 'tno' / 'ir' / '20.png')
    logic, text = page_logic, 'the person'
    if case == 'text':
        vis = str(bad_files / 'notes.png')
    elif case == 'one_pixel':
        vis = ir = str(bad_files / 'one_pixel.png')
    elif case == 'wide':
        vis = ir = str(bad_files / 'wide.png')
    elif case == 'bomb':
        vis = str(bad_files / 'bomb.png')
    elif case == 'gone':
        vis = str(bad_files / 'deleted.png')
    elif case == 'sizes':
        ir = str(bad_files / 'other_size.png')
    elif case == 'missing':
        ir = None
    elif case == 'large_file':
        logic = web_demo.WebDemo(page_logic.model, web_demo.Limits(max_file_mb=0.001))
    elif case == 'no_text':
        text = '  '
    *images, message, state = logic.run(vis, ir, text)
    assert expected in message, message
    assert images == [None] * 4 and state is None


def test_no_checkpoint_says_to_run_make_demo(web_demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match='run `make demo` first'):
        web_demo.main([])
    with pytest.raises(SystemExit, match='give both CONFIG and CHECKPOINT'):
        web_demo.main(['config.py'])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start_server(config: str, checkpoint: str, port: int) -> subprocess.Popen:
    """The web demo in its own process, once its page answers."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='1')
    server = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / 'demo' / 'web_demo.py'), config, checkpoint,
         '--port', str(port), '--max-file-mb', '1'], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + SERVER_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f'the server exited with {server.returncode}:\n{server.stdout.read()}')
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/', timeout=5) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(1)
    stop_server(server)
    pytest.fail(f'the server did not answer within {SERVER_TIMEOUT} s')


def stop_server(server: subprocess.Popen) -> str:
    """Stop the server; what it printed."""
    server.terminate()
    try:
        output, _ = server.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        output, _ = server.communicate()
    return output


@pytest.fixture(scope='module')
def server(tiny_ris_config_file, tiny_ris_checkpoint):
    port = free_port()
    process = start_server(tiny_ris_config_file, tiny_ris_checkpoint, port)
    yield f'http://127.0.0.1:{port}/'
    print(stop_server(process))


def test_server_answers_gradio_client(server, web_demo, tmp_path, bad_files):
    from gradio_client import Client, handle_file
    client = Client(server, verbose=False)
    vis, ir, text = examples(web_demo)[0]
    messages = []
    for expression in (text, 'the green car'):
        job = client.submit(handle_file(vis), handle_file(ir), expression, api_name='/run')
        vis_preview, ir_preview, fused, overlay, message = job.result(timeout=120)
        messages.append(message)
        assert f'**{expression}**' in message and 'the model took' in message, message
        assert cv2.imread(fused).shape == cv2.imread(vis).shape
        assert cv2.imread(overlay).shape == cv2.imread(vis).shape
    # The same files again in one session: the pair is not read again.
    assert 'images reused from the previous request' in messages[1], messages
    job = client.submit(handle_file(str(bad_files / 'notes.png')), handle_file(ir), text,
                        api_name='/run')
    *images, message = job.result(timeout=120)
    messages.append(message)
    assert images == [None] * 4 and 'is not an image this page can read' in message, message
    with pytest.raises(ValueError, match='exceeds the maximum file size of 1048576 bytes'):
        client.submit(handle_file(str(bad_files / 'large.png')), handle_file(ir), text,
                      api_name='/run').result(timeout=120)
    job = client.submit(handle_file(vis), handle_file(ir), text, api_name='/run')
    assert 'the model took' in job.result(timeout=120)[-1]  # still serving
    print('\n'.join(messages))


def chromium_binaries():
    browser = shutil.which('chromium') or shutil.which('chromium-browser')
    driver = shutil.which('chromedriver')
    if browser is None or driver is None:
        pytest.skip('the browser test needs Chromium and its driver (Debian: apt-get install '
                    'chromium chromium-driver); neither is required elsewhere')
    return browser, driver


def test_example_in_a_real_browser(server, tmp_path, load_repo_script):
    browser, driver = chromium_binaries()
    browser_check = load_repo_script('demo/web_demo_browser.py')
    screenshot = tmp_path / 'page.png'
    text = browser_check.screenshot_example(server, screenshot, browser=browser, driver=driver,
                                            timeout=120)
    assert 'the model took' in text, text
    image = cv2.imread(str(screenshot))
    assert image is not None and image.shape[0] > 400 and image.shape[1] > 800


def test_default_config_is_what_make_demo_trains(web_demo):
    """The page's default config and tools/demo.sh name the same file (a checkpoint of one
    does not load into the other: the demo's Swin has coordinate channels)."""
    demo_sh = (Path(web_demo.__file__).resolve().parents[1] / 'tools' / 'demo.sh').read_text()
    assert f'config={web_demo.DEMO_CONFIG}\n' in demo_sh
    assert (Path(web_demo.__file__).resolve().parents[1] / web_demo.DEMO_CONFIG).is_file()

"""Open the web demo in headless Chromium, run a bundled example and save a screenshot.

Example:
    make demo
    python demo/web_demo_browser.py --out docs/web_demo.png      # serves the demo page itself
    python demo/web_demo_browser.py --url http://127.0.0.1:7860/ --out page.png

The browser is driven through chromedriver's W3C WebDriver protocol, plain HTTP, with the
standard library only: open the page, click an example, press Run, wait until the page says
how long the model took and the fused image has loaded, then save a screenshot of the whole
page. Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``).
Without ``--url`` it starts ``demo/web_demo.py`` (with CONFIG CHECKPOINT when given, else the
``make demo`` model) on a free port and stops it at the end.
"""
import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]
# Headless Chromium in a sandboxed container with no network: every background service off
# (without them the browser's own connections are refused and it stalls).
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                  '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync', '--hide-scrollbars']
ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'  # the W3C key of an element reference
WINDOW = (1400, 1000)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f'waited {timeout:g} s for {what}')
        time.sleep(interval)


class WebDriver:
    """The few WebDriver commands the check needs, over HTTP to chromedriver.

    Args:
        driver (str): The chromedriver binary.
        browser (str): The Chromium binary.
        profile (str): An empty folder for the browser's profile.
    """

    def __init__(self, driver: str, browser: str, profile: str) -> None:
        port = free_port()
        self.base = f'http://127.0.0.1:{port}'
        self.process = subprocess.Popen([driver, f'--port={port}'], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for(self._ready, 30, 'chromedriver to start')
        options = {'binary': browser, 'args': CHROMIUM_FLAGS + [
            f'--user-data-dir={profile}', '--window-size={},{}'.format(*WINDOW)]}
        session = self.command('POST', '/session', {'capabilities': {'alwaysMatch': {
            'browserName': 'chrome', 'goog:chromeOptions': options}}})
        self.session = f'/session/{session["sessionId"]}'

    def _ready(self) -> bool:
        try:
            return self.command('GET', '/status')['ready']
        except OSError:
            return False

    def command(self, method: str, path: str, body: Optional[dict] = None) -> Any:
        """Send one WebDriver command; its ``value``."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={'Content-Type': 'application/json'})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())['value']
        except urllib.error.HTTPError as error:
            raise RuntimeError(f'WebDriver {method} {path}: {error.read().decode()}') from None

    def run_script(self, script: str, *args: Any) -> Any:
        """Run JavaScript in the page; what it returns."""
        return self.command('POST', f'{self.session}/execute/sync',
                            {'script': script, 'args': list(args)})

    def click(self, css: str) -> None:
        """Click the first element matching a CSS selector."""
        element = self.command('POST', f'{self.session}/element',
                               {'using': 'css selector', 'value': css})
        self.command('POST', f'{self.session}/element/{element[ELEMENT]}/click', {})

    def quit(self) -> None:
        """End the session and the driver."""
        try:
            self.command('DELETE', self.session)
        finally:
            self.process.terminate()
            self.process.wait(timeout=30)


def _text(driver: WebDriver, css: str) -> str:
    return driver.run_script(
        'const e = document.querySelector(arguments[0]); return e ? e.innerText : "";', css)


def _image_shown(driver: WebDriver, css: str) -> bool:
    """Whether the element matching ``css`` shows a decoded, non-empty image."""
    return driver.run_script(
        'const i = document.querySelector(arguments[0] + " img");'
        'return !!i && i.complete && i.naturalWidth > 0;', css)


def screenshot_example(url: str, out: Path, example: int = 0, browser: Optional[str] = None,
                       driver: Optional[str] = None, timeout: float = 120) -> str:
    """Run an example on the page at ``url`` and save a screenshot of the whole page.

    Args:
        url (str): The page.
        out (Path): The PNG to write.
        example (int): Which example row to click. Defaults to 0.
        browser (str, optional): Chromium. Defaults to None (``chromium`` on the PATH).
        driver (str, optional): chromedriver. Defaults to None (on the PATH).
        timeout (float): Seconds to wait for the page and for the result. Defaults to 120.

    Returns:
        str: The message the page showed with the result.
    """
    browser = browser or shutil.which('chromium') or shutil.which('chromium-browser')
    driver = driver or shutil.which('chromedriver')
    if browser is None or driver is None:
        raise FileNotFoundError('need Chromium and chromedriver (Debian: apt-get install '
                                'chromium chromium-driver)')
    with tempfile.TemporaryDirectory() as profile:
        session = WebDriver(driver, browser, profile)
        try:
            session.command('POST', f'{session.session}/url', {'url': url})
            cell = f'[data-testid="dataset-cell-{example}-0"]'
            wait_for(lambda: session.run_script(
                'return !!document.querySelector(arguments[0]);', cell), timeout,
                'the examples to appear')
            vis_stem = Path(_text(session, cell).strip()).stem  # the file box breaks the name
            session.click(cell)
            wait_for(lambda: vis_stem in _text(session, '#vis-file'), timeout,
                     'the example to fill in the inputs')
            session.click('#run-button')
            message = wait_for(lambda: (lambda text: text if 'the model took' in text
                                        or 'Cannot run' in text else '')(
                _text(session, '#message')), timeout, 'the result')
            wait_for(lambda: _image_shown(session, '#fused'), timeout, 'the fused image')
            height = session.run_script('return document.documentElement.scrollHeight;')
            session.command('POST', f'{session.session}/window/rect',
                            {'width': WINDOW[0], 'height': max(WINDOW[1], int(height) + 40)})
            time.sleep(1)  # let the page lay out at the new size
            png = base64.b64decode(session.command('GET', f'{session.session}/screenshot'))
        finally:
            session.quit()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    return message


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Screenshot the web demo after an example')
    parser.add_argument('config', nargs='?', help='config (default: the `make demo` one)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (default: `make demo`\'s)')
    parser.add_argument('--url', help='a page already served (default: serve one here)')
    parser.add_argument('--out', default='web_demo.png', help='the screenshot (PNG)')
    parser.add_argument('--example', type=int, default=0, help='which example row to run')
    parser.add_argument('--timeout', type=float, default=300,
                        help='seconds to wait for the server, the page and the result')
    return parser.parse_args()


def main() -> None:
    """Serve the page if needed, run the example, save the screenshot."""
    args = parse_args()
    server = None
    url = args.url
    if url is None:
        port = free_port()
        url = f'http://127.0.0.1:{port}/'
        command = [sys.executable, str(REPO_ROOT / 'demo' / 'web_demo.py'),
                   *[a for a in (args.config, args.checkpoint) if a], '--port', str(port)]
        server = subprocess.Popen(command, cwd=os.getcwd())

        def serving() -> bool:
            if server.poll() is not None:
                raise SystemExit(f'the web demo exited with status {server.returncode}')
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return True
            except OSError:
                return False

        wait_for(serving, args.timeout, f'the web demo at {url}', interval=1)
    try:
        message = screenshot_example(url, Path(args.out), args.example, timeout=args.timeout)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(f'{message}\nscreenshot: {args.out}')


if __name__ == '__main__':
    main()

"""A web page to try a RIS-FUSION model: a VIS/IR pair and an expression in, the fused image
and the referred object's mask out.

Example:
    make demo                       # trains the demo model into work_dirs/demo
    python demo/web_demo.py         # then open http://127.0.0.1:7860
    python demo/web_demo.py CONFIG CHECKPOINT --port 7860 --device cuda:0

Upload a visible and an infrared image (or pick a bundled example), type an expression and
press Run: the page shows both inputs, the fused image, the predicted mask in red over it
and the time the model took. Further expressions on the same pair reuse the decoded and
resized images (``mmrisfusion.apis.PairInferencer``). The server binds to 127.0.0.1 unless
``--host`` says otherwise; uploads above ``--max-file-mb`` are refused by the server, and
images that are not images, are smaller than ``--min-side`` or larger than ``--max-side``
pixels per side, or whose sizes differ, get a message on the page. Needs Gradio
(``pip install -e ".[web]"``).
"""
import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # nothing leaves the machine
try:
    import gradio as gr
except ImportError as error:
    raise SystemExit('the web demo needs Gradio: pip install -e ".[web]"') from error
from PIL import Image, UnidentifiedImageError

from mmrisfusion.apis import PairInferencer, init_model
from mmrisfusion.visualization import overlay_mask

#: What `make demo` trains (tools/demo.sh), relative to the repository root.
DEMO_CONFIG = ('configs/risfusion/'
               'risfusion_swin-mini_minilm_1xb16-side-swap-1.3k_mm-ris-synthetic-128x128.py')
DEMO_WORK_DIR = 'work_dirs/demo'
EXAMPLES_DIR = Path(__file__).resolve().parent / 'examples'
PREVIEW_SIDE = 256
IMAGE_HEIGHT = 280  # pixels on the page
# Small images (the examples are 128 px) fill their box instead of sitting in its middle.
PAGE_CSS = '.scaled img { width: 100%; height: 100%; object-fit: contain; }'


@dataclass(frozen=True)
class Limits:
    """What an upload may be.

    Attributes:
        max_file_mb (float): Largest upload in MiB (the server refuses bigger ones).
        max_side (int): Largest image side in pixels.
        min_side (int): Smallest image side in pixels.
    """
    max_file_mb: float = 32.0
    max_side: int = 4096
    min_side: int = 16


class UploadError(ValueError):
    """An upload the page explains instead of running the model."""


@dataclass
class LoadedPair:
    """A pair as the page keeps it between requests (in the session's state).

    Attributes:
        key (tuple): The two files' paths and sizes: another upload changes it, asking
            again about the same images does not.
        inferencer (PairInferencer): The pair after the image steps of the pipeline.
        previews (tuple[np.ndarray, np.ndarray]): Small RGB copies of VIS and IR.
        load_seconds (float): Time spent checking, decoding and resizing.
    """
    key: tuple
    inferencer: PairInferencer
    previews: Tuple[np.ndarray, np.ndarray]
    load_seconds: float


def _file_key(path: str) -> tuple:
    """What identifies an upload without reading it: Gradio stores every upload in a folder
    named by the SHA-256 of its content, so the same image uploaded again (a client sends
    its files with every request) has the same path."""
    return path, os.path.getsize(path)


def check_image_file(path: Optional[str], what: str, limits: Limits) -> Tuple[int, int]:
    """Check an uploaded file from its size and header alone; its (width, height).

    Args:
        path (str, optional): The uploaded file.
        what (str): 'visible' or 'infrared', for the message.
        limits (Limits): The limits.

    Returns:
        tuple[int, int]: Width and height.

    Raises:
        UploadError: With a message for the page.
    """
    if not path:
        raise UploadError(f'Upload the {what} image (or pick an example below).')
    name = Path(path).name
    megabytes = os.path.getsize(path) / 2**20
    if megabytes > limits.max_file_mb:
        raise UploadError(f'The {what} file {name} has {megabytes:.1f} MiB; at most '
                          f'{limits.max_file_mb:g} MiB are accepted.')
    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
    except Image.DecompressionBombError:  # more pixels than Pillow agrees to handle
        raise UploadError(f'The {what} image {name} has far more pixels than the '
                          f'{limits.max_side} px per side accepted.') from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UploadError(f'The {what} file {name} is not an image this page can read '
                          '(PNG, JPEG, BMP, TIFF, WebP).') from None
    if max(width, height) > limits.max_side:
        raise UploadError(f'The {what} image {name} is {width}x{height} px; at most '
                          f'{limits.max_side} px per side are accepted.')
    if min(width, height) < limits.min_side:
        raise UploadError(f'The {what} image {name} is {width}x{height} px; at least '
                          f'{limits.min_side} px per side are needed.')
    return width, height


def _preview(path: str) -> np.ndarray:
    """A small RGB copy of an image for the page."""
    with Image.open(path) as image:
        image.draft('RGB', (PREVIEW_SIDE, PREVIEW_SIDE))  # JPEG: decode at a lower scale
        image = image.convert('RGB')
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        return np.asarray(image)


def load_examples(folder: Path = EXAMPLES_DIR) -> List[List[str]]:
    """The bundled example rows ``[vis_path, ir_path, expression]``."""
    rows = json.loads((folder / 'examples.json').read_text())
    return [[str(folder / row['vis']), str(folder / row['ir']), row['text']] for row in rows]


class WebDemo:
    """The page's logic, apart from Gradio: load a pair once, answer expressions about it.

    Args:
        model (nn.Module): A RIS-FUSION model from :func:`mmrisfusion.apis.init_model`.
        limits (Limits): What an upload may be. Defaults to ``Limits()``.
        title (str): The page's heading. Defaults to 'RIS-FUSION'.
    """

    def __init__(self, model, limits: Limits = Limits(), title: str = 'RIS-FUSION') -> None:
        self.model = model
        self.limits = limits
        self.title = title

    def load(self, vis_path: Optional[str], ir_path: Optional[str]) -> LoadedPair:
        """Check a pair and run the image steps of the pipeline on it.

        Args:
            vis_path (str, optional): The visible image file.
            ir_path (str, optional): The infrared image file.

        Returns:
            LoadedPair: The pair, ready for expressions.

        Raises:
            UploadError: With a message for the page.
        """
        start = time.perf_counter()
        vis_size = check_image_file(vis_path, 'visible', self.limits)
        ir_size = check_image_file(ir_path, 'infrared', self.limits)
        if vis_size != ir_size:
            raise UploadError('The visible image is {}x{} px but the infrared one is {}x{} px; '
                              'a registered pair has one size.'.format(*vis_size, *ir_size))
        try:
            inferencer = PairInferencer(self.model, vis_path, ir_path)
        except (ValueError, OSError) as error:  # e.g. a truncated file that only looked fine
            raise UploadError(f'The pair could not be read: {error}') from None
        return LoadedPair((_file_key(vis_path), _file_key(ir_path)), inferencer,
                          (_preview(vis_path), _preview(ir_path)),
                          time.perf_counter() - start)

    def run(self, vis_path: Optional[str], ir_path: Optional[str], text: Optional[str],
            loaded: Optional[LoadedPair] = None) -> tuple:
        """What the Run button does; never raises for bad input.

        Args:
            vis_path (str, optional): The visible image file.
            ir_path (str, optional): The infrared image file.
            text (str, optional): The expression.
            loaded (LoadedPair, optional): The pair of the previous request (the session's
                state); reused when the files are the same. Defaults to None.

        Returns:
            tuple: VIS and IR previews, the fused image, the mask over it (RGB uint8 arrays
            or None), the message (Markdown) and the pair to keep for the next request.
        """
        nothing = (None, None, None, None)
        if not text or not text.strip():
            return (*nothing, 'Type an expression, e.g. *the person on the left*.', loaded)
        try:
            try:
                key = tuple(_file_key(p) if p else None for p in (vis_path, ir_path))
            except OSError:
                raise UploadError('An uploaded file is gone from the server; upload it '
                                  'again.') from None
            reused = loaded is not None and loaded.key == key
            if not reused:
                loaded = self.load(vis_path, ir_path)
        except UploadError as error:
            return (*nothing, f'**Cannot run:** {error}', None)
        start = time.perf_counter()
        result = loaded.inferencer(text.strip())
        seconds = time.perf_counter() - start
        loading = ('images reused from the previous request' if reused
                   else f'images loaded in {loaded.load_seconds:.2f} s')
        height, width = loaded.inferencer.ori_shape
        message = (f'**{text.strip()}**: {result.mask.mean():.1%} of the {width}x{height} '
                   f'image referred; the model took **{seconds:.2f} s** ({loading}).')
        return (*loaded.previews, result.fused, overlay_mask(result.fused, result.mask),
                message, loaded)

    def build(self, examples: Optional[List[List[str]]] = None) -> 'gr.Blocks':
        """The Gradio page.

        Args:
            examples (list[list[str]], optional): Rows ``[vis, ir, expression]``. Defaults
                to None (the bundled ones).

        Returns:
            gr.Blocks: The page; its ``run`` endpoint takes (vis, ir, expression).
        """
        examples = load_examples() if examples is None else examples
        image_types = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp']
        with gr.Blocks(title=self.title, analytics_enabled=False) as page:
            gr.Markdown(f'# {self.title}\nUpload a visible and an infrared image of one '
                        'scene, or pick an example, then say which object you mean.')
            with gr.Row():
                vis = gr.File(label='Visible image', file_types=image_types, type='filepath',
                              elem_id='vis-file')
                ir = gr.File(label='Infrared image', file_types=image_types, type='filepath',
                             elem_id='ir-file')
                with gr.Column():
                    text = gr.Textbox(label='Expression', placeholder='the person on the left',
                                      elem_id='expression')
                    button = gr.Button('Run', variant='primary', elem_id='run-button')
            message = gr.Markdown(elem_id='message')
            with gr.Row():
                vis_preview, ir_preview, fused, overlay = (
                    gr.Image(label=label, interactive=False, format='png', height=IMAGE_HEIGHT,
                             elem_id=elem_id, elem_classes=['scaled'])
                    for label, elem_id in (('Visible', 'vis'), ('Infrared', 'ir'),
                                           ('Fused', 'fused'), ('Mask (red) on fused', 'mask')))
            if examples:
                gr.Examples(examples, inputs=[vis, ir, text], label='Examples',
                            elem_id='examples')
            state = gr.State()
            outputs = [vis_preview, ir_preview, fused, overlay, message, state]
            inputs = [vis, ir, text, state]
            button.click(self.run, inputs, outputs, api_name='run', concurrency_id='model')
            text.submit(self.run, inputs, outputs, api_visibility='private',
                        concurrency_id='model')
        return page


def default_checkpoint(work_dir: str = DEMO_WORK_DIR) -> Optional[str]:
    """The checkpoint `make demo` left (named in ``work_dir/last_checkpoint``), if any."""
    pointer = Path(work_dir) / 'last_checkpoint'
    if not pointer.is_file():
        return None
    path = pointer.read_text().strip()
    return path if Path(path).is_file() else None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description='Serve a web page to try a RIS-FUSION model')
    parser.add_argument('config', nargs='?', help=f'config file (default: {DEMO_CONFIG})')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint (default: the one `make '
                        f'demo` wrote, named in {DEMO_WORK_DIR}/last_checkpoint)')
    parser.add_argument('--host', default='127.0.0.1', help='address to bind; 0.0.0.0 serves '
                        'every network interface')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--max-file-mb', type=float, default=Limits.max_file_mb,
                        help='largest upload in MiB')
    parser.add_argument('--max-side', type=int, default=Limits.max_side,
                        help='largest image side in pixels')
    parser.add_argument('--min-side', type=int, default=Limits.min_side,
                        help='smallest image side in pixels')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    """Load the model and serve the page until interrupted."""
    args = parse_args(argv)
    if args.config is not None and args.checkpoint is None:
        sys.exit('give both CONFIG and CHECKPOINT, or neither for the `make demo` model')
    config = args.config or DEMO_CONFIG
    checkpoint = args.checkpoint or default_checkpoint()
    if checkpoint is None:
        sys.exit(f'no checkpoint given and none in {DEMO_WORK_DIR}/last_checkpoint: run '
                 '`make demo` first (it trains the demo model, about 19 minutes on 2 cores), '
                 'or give CONFIG CHECKPOINT')
    for path in (config, checkpoint):
        if not Path(path).is_file():
            sys.exit(f'{path} does not exist')
    model = init_model(config, checkpoint, device=args.device)
    limits = Limits(args.max_file_mb, args.max_side, args.min_side)
    page = WebDemo(model, limits, title=f'RIS-FUSION: {Path(config).stem}').build()
    page.queue(default_concurrency_limit=1, max_size=32)
    if args.host != '127.0.0.1':
        print(f'serving on {args.host}: anyone who reaches this machine can use the model')
    page.launch(server_name=args.host, server_port=args.port,
                max_file_size=int(limits.max_file_mb * 2**20),
                allowed_paths=[str(EXAMPLES_DIR)], show_error=False, css=PAGE_CSS)


if __name__ == '__main__':
    main()

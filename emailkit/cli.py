"""`emailkit` on the command line.

    emailkit sandbox --smtp 127.0.0.1:1025 --listen 127.0.0.1:8025   the embedded Mailpit stand-in
    emailkit provider --mailpit URL --smtp HOST:PORT --listen ...      the hosted-API stand-in
    emailkit up                                                        sandbox + provider together
    emailkit decide answers.yaml --format md --output reports/         a recommendation report
    emailkit run [--output build/notebooks]                            execute every notebook
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

# subcommand -> (module providing add_arguments(parser) and run(args) -> int, help)
_COMMANDS = {
    "sandbox": ("emailkit.sandbox.cli", "run the embedded Mailpit stand-in (SMTP + REST API)"),
    "provider": ("emailkit.provider.cli", "run the local hosted-email API (OAuth, send, read)"),
    "up": ("emailkit.stack", "run the sandbox and the provider together"),
    "decide": ("emailkit.decide.cli", "score a project's answers: SMTP, API or hybrid, and write a report"),
    "run": ("emailkit.cli", "execute every notebook unattended and save the results"),
    "workshop": ("emailkit.workshop", "a room of participants on JupyterHub; collect their reports; reset one"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `emailkit run`."""
    parser.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="folder of NN_*.ipynb")
    parser.add_argument("--output", type=Path, default=Path("build/notebooks"), help="where executed copies go")
    parser.add_argument("--timeout", type=int, default=300, help="seconds allowed per cell")


def run(args: argparse.Namespace) -> int:
    """`emailkit run`: execute every numbered notebook in order into --output."""
    import tempfile

    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebooks = sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        print(f"emailkit run: no NN_*.ipynb notebooks in {args.notebooks}", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        # The kernel talks to us over IPC (Unix sockets in a private 0700 folder), not over loopback
        # TCP: nothing else on the machine can connect to it, and ipykernel has no reason to warn
        # "Kernel is running over TCP without encryption" (once per notebook).
        with tempfile.TemporaryDirectory(prefix="emailkit-kernel-") as sockets:
            km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "kernel"),
                               connection_file=str(Path(sockets) / "kernel.json"))
            client = NotebookClient(nb, km=km, timeout=args.timeout, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                client.execute()
                status = "ok"
            except CellExecutionError as exc:
                failed += 1
                status = f"FAILED: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}"
            finally:  # a kernel manager we pass in is ours to stop (nbclient stops only its own)
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
        nbformat.write(nb, args.output / path.name)
        print(f"{path.name}: {status}")
    print(f"Executed notebooks are in {args.output}/")
    return 1 if failed else 0


def build_parser(commands: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommands in `commands` (default: all) import their module for their flags,
    so ``emailkit --help`` and ``emailkit decide ...`` never load the servers."""
    parser = argparse.ArgumentParser(prog="emailkit", description="SMTP, REST API, or both? Live evidence.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in _COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if commands is None or name in commands:
            module = importlib.import_module(module_name)
            module.add_arguments(command)
            command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = next((w for w in words if not w.startswith("-")), None)
    args = build_parser([chosen] if chosen in _COMMANDS else []).parse_args(words)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

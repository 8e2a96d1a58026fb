"""``python -m reffeat``: a short menu of the commands; ``python -m reffeat CMD ARGS``
runs one of them (the same as ``python -m reffeat.CMD ARGS``)."""
import importlib
import sys

#: (name, module whose ``main(argv)`` runs it, one line for the menu)
COMMANDS = (
    ("run", "reffeat.cli.run", "ST vs AT on the SPEC's synthetic patch data (summary.json, figures, report)"),
    ("run real", "reffeat.cli.run", "ST vs AT on real images (MNIST, Fashion-MNIST, CIFAR-10, SVHN) with the lenses"),
    ("verify", "reffeat.verify.run", "every claim check over seeds, phase diagrams, a Markdown REPORT"),
    ("sweep", "reffeat.cli.sweep", "a grid of configs x seeds (GRID.toml) into a table and a heat map"),
    ("data", "reffeat.cli.data", "fetch, import or locate the real image data sets"),
    ("bench", "reffeat.cli.bench", "speed and memory of one training step, fast path vs reference"),
)


def menu() -> str:
    """The text ``python -m reffeat`` prints."""
    from .. import __version__
    width = max(len(name) for name, _, _ in COMMANDS)
    lines = [f"reffeat {__version__}: ST vs AT (Li & Li, arXiv 2410.08503), a numpy/numba reference.",
             "", "usage: python -m reffeat COMMAND [OPTIONS]   (or python -m reffeat.COMMAND)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, _, text in COMMANDS]
    lines += ["", "python -m reffeat.COMMAND --help   the options of one command "
                  "(python -m reffeat.run real --help for run real)",
              "python -m reffeat --version        the version"]
    return "\n".join(lines)


def main(argv=None) -> int:
    """No argument, -h or --help: the menu (exit 0); --version: the version; a
    command name: that command with the remaining arguments; anything else: the
    menu on stderr, exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(menu())
        return 0
    if argv[0] == "--version":
        from .. import __version__
        print(f"reffeat {__version__}")
        return 0
    modules = {name: module for name, module, _ in COMMANDS if " " not in name}
    if argv[0] in modules:
        return importlib.import_module(modules[argv[0]]).main(argv[1:])
    print(f"error: unknown command {argv[0]!r}; one of {', '.join(modules)}\n\n{menu()}", file=sys.stderr)
    return 2

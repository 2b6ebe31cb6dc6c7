"""``python -m cli``: the ``banditkit`` command, also how the server starts its learner."""

from cli import main

main(prog_name="banditkit")

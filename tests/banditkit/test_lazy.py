"""A package's names imported on first use."""

import subprocess
import sys
import types

import pytest

from banditkit.lazy import lazy_exports


def test_a_name_is_imported_on_first_use_and_kept():
    package = types.ModuleType("lazy_package")
    attribute, names = lazy_exports(vars(package), {"json": ("dumps",)})
    assert "dumps" in names() and "dumps" not in vars(package)
    import json
    assert attribute("dumps") is json.dumps
    assert vars(package)["dumps"] is json.dumps
    with pytest.raises(AttributeError, match="'lazy_package' has no attribute 'loads'"):
        attribute("loads")


def test_ope_and_simulator_import_neither_scikit_learn_nor_pandas_up_front():
    code = ("import sys, ope, simulator; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'pandas'}))")
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=True)
    assert finished.stdout.strip() == "[]"

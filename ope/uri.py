"""Log paths that name a file system: URIs, which only Spark reads.

A URI (``hdfs://``, ``s3a://``, ``abfss://``, ``file://``...) is listed and
read through Spark's Hadoop FileSystem (:mod:`ope.spark`), so the cluster's
own configuration decides what it reaches; every other path is local (or a
shared mount) and is read by the process that needs it. This module imports
nothing heavy: the command line checks its arguments with it.
"""

from __future__ import annotations

import os
import re

__all__ = ["is_uri"]

# two letters at least, so that a Windows drive (C:/) stays a path; Hadoop
# writes file:/x as well as file:///x
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")


def is_uri(path: str | os.PathLike) -> bool:
    """True for a URI (``hdfs://``, ``s3a://``, ``file://``...), which only Spark reads."""
    return isinstance(path, str) and _URI.match(path) is not None

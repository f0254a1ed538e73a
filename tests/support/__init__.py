"""Helpers shared by the tests of both lanes (``tests/unit`` and ``tests/integration``); no tests here.

Imported as ``support.NAME`` (``tests/`` is on the path through pytest's ``pythonpath``
setting). Some modules are also named in strings, resolved by module name in another
process or by the engine, so they must keep the ``support.`` prefix:
``support.step_handlers:NAME`` handler strings in workflow definitions,
``SCHEMATHESIS_HOOKS=support.schemathesis_hooks`` for the fuzzing subprocess, and
``support.outbox_procs`` functions started with multiprocessing's spawn method.
"""

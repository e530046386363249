"""The fake upstream API and the fake Manager, for tests that run the whole application."""

from tests.ami.conftest import fake_manager
from tests.upstream.conftest import fake

__all__ = ["fake", "fake_manager"]

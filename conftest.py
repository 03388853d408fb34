"""The repository's root conftest: the platform's pytest fixtures (``tenantry.testing``) for
every test folder, the kernel's (tests/) and each module's."""

pytest_plugins = ["tenantry.testing.plugin"]

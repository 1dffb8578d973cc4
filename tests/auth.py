"""How a test signs a user in: the one place to change when signing in takes more."""


def log_in(client, user) -> None:
    """Sign ``user`` in as the pages would leave them: verified by their authenticator (and
    freshly re-authenticated) when their role requires two-factor authentication."""
    from portal.twofactor import requires_two_factor
    from tests.conftest import login_verified

    if requires_two_factor(user):
        login_verified(client, user)
    else:
        client.force_login(user)

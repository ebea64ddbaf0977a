"""The Okta System Log API: settings, credentials, cursors, many orgs, the Beam readers."""

"""Telling people (issue #17): customer messages, shop notes, outbound webhooks, merchant alerts."""

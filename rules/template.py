"""The starter stocksync.yaml written by ``stocksync init``."""

from __future__ import annotations

_TEMPLATE = """\
# stocksync configuration. `stocksync check` validates it; errors name FILE:LINE: key.path.
# Secrets never go in this file: write ${VAR} (read from the environment, or from the file
# named by $VAR_FILE; ${VAR:-fallback} is allowed) or name a file with <key>_file, e.g.
# token_file: /run/secrets/shopify_token (relative paths start at this file's folder).

database: sqlite:///stocksync.db     # relative to this file; postgresql+psycopg://... in production
broker: memory                       # redis://127.0.0.1:6379/0 to run workers as separate processes

channels:
  # A manual channel: sales you enter yourself (`stocksync order add popup REF SKU=QTY`).
  popup: {kind: manual}

  # shop:
  #   kind: shopify
  #   shop: my-store.myshopify.com
  #   api_version: "2026-07"
  #   token: ${SHOPIFY_TOKEN}
  #   webhook_secret: ${SHOPIFY_WEBHOOK_SECRET}
  #   location: Main
  #   # api_url: http://127.0.0.1:8081   # point at `stocksync sandbox shopify --port 8081`
  #   # tier_from: {tags: {vip: vip}}    # customer tag -> tier (see tiers: below)

  # woo:
  #   kind: woocommerce
  #   url: https://shop.example.com
  #   consumer_key: ${WC_KEY}
  #   consumer_secret: ${WC_SECRET}
  #   webhook_secret: ${WC_WEBHOOK_SECRET}
  #   # tier_from: {role: {wholesale_customer: vip}}   # customer role -> tier; or {meta: KEY}

server:
  host: 127.0.0.1
  port: 8080
  # api_token: ${STOCKSYNC_API_TOKEN}  # guards POST /api/purchase-orders/{ref}/receipts

daemon:
  poll_interval_s: 60          # polling is the safety net behind webhooks
  poll_overlap_s: 120
  sweep_interval_s: 30
  sweep_age_s: 60
  push_interval_s: 2
  reconcile_interval_s: 900
  campaign_tick_interval_s: 60 # campaigns: expiries, reminders, waves, payment calls

logging:
  level: INFO
  # json: true                 # default: JSON when not on a terminal

tiers: [vip, regular]          # customer tiers, best first (used to rank backorder releases);
                               # shop orders get theirs from the channel's tier_from

# Rules: built-in defaults < defaults < channel_rules.<channel> < the first matching sku_rule.
defaults:
  safety_buffer: 0             # units held back from every channel
  # cap: 100                   # never offer more than this
  backorders:
    enabled: false
    incoming_share: 1.0        # share of open purchase orders that may be sold ahead (0..1),
                               # or auto: each PO's supplier's measured fill rate, bounded by
    # incoming_share_floor: 0.5  # (also the share of a supplier with < 3 closed POs)
    # incoming_share_cap: 1.0
    horizon_days: 14           # only purchase orders due within this many days count
  release:
    order: [priority, tier, placed_at]
    partial: true

channel_rules:
  popup: {priority: 1}         # lower priority numbers are served first on release

sku_rules:
  # - match: "DROP-*"          # glob on the SKU, case-sensitive; the first match wins
  #   channels: [popup]        # optional: only for these channels
  #   safety_buffer: 0
  #   backorders: {enabled: false}
"""


def render_config_template() -> str:
    return _TEMPLATE

"""Channel connectors: Shopify (GraphQL), WooCommerce (REST), manual; and loopback sandboxes."""

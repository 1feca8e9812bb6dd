"""The order of the steps in a marketplace's run: sell orders after products, without depending on them."""

# Dagster skips every step downstream of a failed one, so no sell-order step depends on a product step: a
# failed listings report must not stop demand. They should still run after the product steps, or a first
# sync would hold every order until the next cycle for want of its products. The in-process executor runs
# one step at a time, always the ready one of highest priority (and SP-API pool slots go by priority too),
# so the order path carries a lower one. Should it run first all the same, its orders wait one cycle: held,
# never lost or sent without their product.
ORDER_PATH_TAGS = {"dagster/priority": "-1"}

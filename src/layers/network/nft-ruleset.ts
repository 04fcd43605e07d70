import { formatCidr, type Ipv4Cidr } from "./address.js"

/** banger's one nftables table; nothing else in the ruleset is ever touched. */
export const NFT_FAMILY = "inet"
export const NFT_TABLE = "banger"

/**
 * What `nft -f` loads. The first two lines make the load idempotent and atomic (the table is
 * created if missing, then deleted, then defined afresh, in one transaction). Only traffic from
 * the pool is masqueraded and let through the forward hook, and only replies come back in. An
 * accept here cannot override another table's drop (each base chain votes), so a host firewall
 * that drops forwarding still wins: doctor shows forwarding, the host's own rules are its own.
 */
export const nftRuleset = (pool: Ipv4Cidr) => {
  const cidr = formatCidr(pool)
  return [
    `table ${NFT_FAMILY} ${NFT_TABLE}`,
    `delete table ${NFT_FAMILY} ${NFT_TABLE}`,
    `table ${NFT_FAMILY} ${NFT_TABLE} {`,
    "  chain postrouting {",
    "    type nat hook postrouting priority srcnat; policy accept;",
    `    ip saddr ${cidr} ip daddr != ${cidr} masquerade`,
    "  }",
    "  chain forward {",
    "    type filter hook forward priority filter; policy accept;",
    `    ip saddr ${cidr} accept`,
    `    ip daddr ${cidr} ct state established,related accept`,
    "  }",
    "}",
    ""
  ].join("\n")
}

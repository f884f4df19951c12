/** What tier derivation needs of a collection: its id and where it reads from. */
export interface TierNode {
  id: string;
  source_bucket_ids: readonly string[];
  source_collection_ids: readonly string[];
}

/**
 * The `dag_tiers` of a batch on `bucketId` (DESIGN-NOTES §4): tier 0 holds the collections that read the
 * bucket; a collection that reads other collections sits one tier after the highest of its sources that the
 * batch reaches. Sources the batch does not reach produce nothing for it and are ignored; collections with
 * no reached source are left out. Ids are sorted within a tier so the answer is deterministic.
 *
 * Cycles cannot be created through the API; should one exist anyway, its members are treated as unreached
 * rather than looping.
 */
export function deriveTiers(collections: readonly TierNode[], bucketId: string): string[][] {
  const byId = new Map(collections.map((c) => [c.id, c]));
  // id → tier, or null when the batch does not reach the collection.
  const tierOf = new Map<string, number | null>();
  const visiting = new Set<string>();

  const resolve = (id: string): number | null => {
    const known = tierOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id);
    if (!node || visiting.has(id)) return null;
    if (node.source_bucket_ids.includes(bucketId)) {
      tierOf.set(id, 0);
      return 0;
    }
    visiting.add(id);
    let highest: number | null = null;
    for (const source of node.source_collection_ids) {
      const t = resolve(source);
      if (t !== null && (highest === null || t > highest)) highest = t;
    }
    visiting.delete(id);
    const tier = highest === null ? null : highest + 1;
    tierOf.set(id, tier);
    return tier;
  };

  const tiers: string[][] = [];
  for (const c of collections) {
    const t = resolve(c.id);
    if (t === null) continue;
    while (tiers.length <= t) tiers.push([]);
    tiers[t]!.push(c.id);
  }
  for (const tier of tiers) tier.sort();
  return tiers;
}

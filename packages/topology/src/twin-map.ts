import { TopologyError, TopologyErrorCode } from './errors.js'

/** Where a member sits: its center and its slot there. */
export interface Place {
  center: string
  slot: number
}

/**
 * `centers`: twins are the same slot in the two centers (claims 4–5, 14–15,
 * 24–25). `local`: twins are two neighbouring slots of one center, 1↔2, 3↔4…
 * (claims 6, 16, 26).
 */
export type TwinMode = 'centers' | 'local'

/**
 * The one-to-one mapping between members and their twins, and the pairs it
 * makes. Pair `i` holds storage bodies placed on it, or directory partition `i`.
 */
export class TwinMap {
  readonly mode: TwinMode
  /** The center whose members hold the primary copy. */
  readonly primary: string
  /** The center of the twins: the primary's other center, or the primary itself for local twins. */
  readonly backup: string

  constructor (centers: readonly string[], mode: TwinMode = 'centers') {
    const [primary, backup] = centers
    if (primary === undefined) throw new TopologyError(TopologyErrorCode.BAD_REQUEST, 'name at least one center')
    if (mode === 'centers' && (centers.length !== 2 || backup === undefined || backup === primary)) {
      throw new TopologyError(TopologyErrorCode.BAD_REQUEST, 'twins in two centers need two different centers: primary, backup')
    }
    if (mode === 'local' && centers.length !== 1) throw new TopologyError(TopologyErrorCode.BAD_REQUEST, 'local twins live in one center: name only it')
    this.mode = mode
    this.primary = primary
    this.backup = mode === 'local' ? primary : backup as string
  }

  /** Every center of the deployment, primary first. */
  get centers (): string[] {
    return this.mode === 'local' ? [this.primary] : [this.primary, this.backup]
  }

  twinPlace (p: Place): Place {
    if (this.mode === 'local') return { center: p.center, slot: p.slot % 2 === 1 ? p.slot + 1 : p.slot - 1 }
    return { center: p.center === this.primary ? this.backup : this.primary, slot: p.slot }
  }

  /** The pair a place belongs to; undefined for a center that is not ours. */
  pairIndex (p: Place): number | undefined {
    if (!this.centers.includes(p.center)) return undefined
    return this.mode === 'local' ? Math.ceil(p.slot / 2) : p.slot
  }

  /** [primary place, twin place] of pair `index`. */
  pairPlaces (index: number): [Place, Place] {
    if (this.mode === 'local') return [{ center: this.primary, slot: 2 * index - 1 }, { center: this.primary, slot: 2 * index }]
    return [{ center: this.primary, slot: index }, { center: this.backup, slot: index }]
  }

  /** Where to search for a copy of something whose home is in `homeCenter`: its twin's center first, then its own. */
  searchOrder (homeCenter: string): string[] {
    const twin = this.mode === 'local' ? homeCenter : homeCenter === this.primary ? this.backup : this.primary
    return twin === homeCenter ? [homeCenter] : [twin, homeCenter]
  }
}

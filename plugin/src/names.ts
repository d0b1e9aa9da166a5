// Device names for ids: the log gives 12-hex author ids, `peers` and
// `vault.get` give full ids with names.
import { shortId } from "./text";

export interface Names {
	/** The name of the device whose id starts with `id`, if known. */
	nameOf(id: string): string | null;
}

export class DeviceNames implements Names {
	private readonly byShort = new Map<string, string>();

	/** Replaces what is known with `entries` (full or short id, name). */
	set(entries: Iterable<[string, string | null]>): void {
		this.byShort.clear();
		for (const [id, name] of entries) {
			if (name !== null && name !== "") this.byShort.set(shortId(id), name);
		}
	}

	nameOf(id: string): string | null {
		return this.byShort.get(shortId(id)) ?? null;
	}
}

/** "laptop (2ff91365e3c2)", or the id alone. */
export function deviceLabel(names: Names, id: string): string {
	const name = names.nameOf(id);
	return name === null ? shortId(id) : `${name} (${shortId(id)})`;
}

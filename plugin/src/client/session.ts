// The plugin's live view of its vault: the daemon connection feeding the
// store. On every new connection, and whenever events were missed, the
// whole state is read again; in between, events keep it current.
import { DeviceNames, type Names } from "../names";
import { Store } from "../state";
import { errorMessage } from "../text";
import type { Daemon } from "./daemon";
import type { MethodName, ParamsOf, ResultOf } from "./methods";

/** What views need: calls to the daemon, and the state. */
export interface Vellum {
	call<M extends MethodName>(method: M, params?: ParamsOf<M>, timeoutMs?: number): Promise<ResultOf<M>>;
	readonly store: Store;
	/** Device names for ids, read on each connection. */
	readonly names: Names;
}

export class VaultSession implements Vellum {
	readonly store = new Store();
	readonly names = new DeviceNames();
	/** The last failure to read the state, for the status bar's tooltip. */
	lastError: string | null = null;

	constructor(readonly daemon: Daemon) {
		daemon.onState((connection) => this.store.setConnection(connection));
		daemon.onEvent((event) => {
			this.store.apply(event);
			if (event.kind === "lagged") void this.refresh();
		});
		daemon.onReady(() => {
			void this.refresh();
			void this.readNames();
		});
	}

	call<M extends MethodName>(method: M, params?: ParamsOf<M>, timeoutMs?: number): Promise<ResultOf<M>> {
		return this.daemon.call(method, params, timeoutMs);
	}

	/** Reads status, conflicts and held batches afresh; an event that comes meanwhile wins. */
	async refresh(): Promise<void> {
		const since = { ...this.store.eventCounts };
		try {
			const [status, conflicts, held] = await Promise.all([
				this.call("status"),
				this.call("conflicts"),
				this.call("quarantine.list"),
			]);
			this.lastError = null;
			this.store.updateIfUnchanged(since, { status, conflicts, held });
		} catch (error) {
			// The connection dropped meanwhile (the daemon reports that), or
			// the vault could not be read; the next event or connection retries.
			this.lastError = errorMessage(error);
		}
	}

	/** This device's name and its peers'. */
	async readNames(): Promise<void> {
		try {
			const [me, peers] = await Promise.all([this.call("vault.get"), this.call("peers")]);
			this.names.set([[me.device, me.device_name], ...peers.map((p): [string, string | null] => [p.device, p.name])]);
			this.store.update({});
		} catch {
			// Names are a nicety: ids stand in for them.
		}
	}
}

// The daemon's JSON-RPC methods (docs/PROTOCOL.md §11): each name with the
// params it takes and the result it answers, in the types the Rust side
// exports to src/rpc/. A call through RpcClient.call is checked against it.
import type { ApproveParams } from "../rpc/ApproveParams";
import type { CliParams } from "../rpc/CliParams";
import type { CliResult } from "../rpc/CliResult";
import type { ConflictEntry } from "../rpc/ConflictEntry";
import type { ConflictSides } from "../rpc/ConflictSides";
import type { DiffParams } from "../rpc/DiffParams";
import type { DiffResult } from "../rpc/DiffResult";
import type { Held } from "../rpc/Held";
import type { Hello } from "../rpc/Hello";
import type { InviteInfo } from "../rpc/InviteInfo";
import type { InviteParams } from "../rpc/InviteParams";
import type { LogEntry } from "../rpc/LogEntry";
import type { LogParams } from "../rpc/LogParams";
import type { PeerEntry } from "../rpc/PeerEntry";
import type { Preview } from "../rpc/Preview";
import type { QuarantineParams } from "../rpc/QuarantineParams";
import type { ResolveParams } from "../rpc/ResolveParams";
import type { RestoreParams } from "../rpc/RestoreParams";
import type { RollbackParams } from "../rpc/RollbackParams";
import type { Settings } from "../rpc/Settings";
import type { ShowInfo } from "../rpc/ShowInfo";
import type { ShowParams } from "../rpc/ShowParams";
import type { SidesParams } from "../rpc/SidesParams";
import type { Status } from "../rpc/Status";
import type { Tree } from "../rpc/Tree";
import type { TreeParams } from "../rpc/TreeParams";
import type { VaultInfo } from "../rpc/VaultInfo";
import type { VaultSet } from "../rpc/VaultSet";
import type { WriteReport } from "../rpc/WriteReport";

/** The daemon protocol this plugin speaks; `hello` must answer the same. */
export const RPC_PROTOCOL = 1;

interface Method<P, R> {
	params: P;
	result: R;
}

export interface Methods {
	hello: Method<undefined, Hello>;
	subscribe: Method<undefined, { subscribed: boolean }>;
	status: Method<undefined, Status>;
	cli: Method<CliParams, CliResult>;
	log: Method<LogParams, LogEntry[]>;
	conflicts: Method<undefined, ConflictEntry[]>;
	"settings.get": Method<undefined, Settings>;
	"settings.set": Method<Settings, Settings>;
	"vault.get": Method<undefined, VaultInfo>;
	"vault.set": Method<VaultSet, VaultInfo>;
	show: Method<ShowParams, ShowInfo>;
	diff: Method<DiffParams, DiffResult>;
	"checkout.preview": Method<TreeParams, Tree>;
	restore: Method<RestoreParams, WriteReport>;
	"rollback.preview": Method<RollbackParams, Preview>;
	"rollback.apply": Method<RollbackParams, WriteReport>;
	"conflict.sides": Method<SidesParams, ConflictSides>;
	resolve: Method<ResolveParams, WriteReport>;
	peers: Method<undefined, PeerEntry[]>;
	"quarantine.list": Method<undefined, Held[]>;
	"quarantine.accept": Method<QuarantineParams, WriteReport>;
	"quarantine.reject": Method<QuarantineParams, WriteReport>;
	"invite.create": Method<InviteParams, InviteInfo>;
	"invite.approve": Method<ApproveParams, { approved: boolean }>;
	"invite.cancel": Method<undefined, { cancelled: boolean }>;
}

export type MethodName = keyof Methods;
export type ParamsOf<M extends MethodName> = Methods[M]["params"];
export type ResultOf<M extends MethodName> = Methods[M]["result"];

// The default Coco constitution.
//
// A proposal is Accepted once a strict majority of the active members
// (status "Active" in public:coco.gov.members) voted for it, Rejected once so
// many active members voted against it that such a majority is no longer
// possible, and Open otherwise. Votes of members that are not active do not
// count. While there are no active members every proposal stays Open.
//
// Everything below the "end resolve" marker is also the veto sample's
// (veto.js holds only its resolve; VetoSource appends this).

// ---- begin resolve ----

export function resolve(proposal, proposerId, votes) {
  const active = activeMembers();
  let yes = 0;
  let no = 0;
  for (const v of votes) {
    if (!active.has(v.member_id)) continue;
    if (v.vote) yes++;
    else no++;
  }
  return majority(yes, no, active.size);
}

// ---- end resolve ----

// Tables. Values are JSON text.
//   members:           member id -> {cert, status, member_data, encryption_key?}
//   users:             user id -> {cert, user_data}
//   node_measurements: "<platform>:<hex measurement>" -> {platform, measurement}
//   constitution:      "constitution" -> the source, as a JSON string
//   join_policy:       platform -> {allow_insecure, allow_debug, min_tcb?,
//                      host_data?, rtmrs?}; a platform without one may not join
const MEMBERS = "public:coco.gov.members";
const USERS = "public:coco.gov.users";
const MEASUREMENTS = "public:coco.gov.node_measurements";
const CONSTITUTION = "public:coco.gov.constitution";
const JOIN_POLICY = "public:coco.gov.join_policy";

// majority decides from the active members' yes and no votes out of n.
function majority(yes, no, n) {
  if (2 * yes > n) return "Accepted";
  if (no > 0 && 2 * (n - no) <= n) return "Rejected";
  return "Open";
}

// activeMembers returns the ids of the members whose status is "Active".
function activeMembers() {
  const ids = new Set();
  coco.kv.forEach(MEMBERS, (id, value) => {
    if (JSON.parse(value).status === "Active") ids.add(id);
  });
  return ids;
}

// ---- validation ----

// Invalid is thrown by the checks below; validate turns it into
// {valid: false}, apply lets it propagate.
class Invalid extends Error {
  constructor(message) {
    super(message);
    this.name = "Invalid";
  }
}

function fail(message) {
  throw new Invalid(message);
}

function has(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function isPlainObject(v) {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// checkArgs refuses unknown and missing args.
function checkArgs(args, required, optional) {
  for (const k of Object.keys(args)) {
    if (!required.includes(k) && !optional.includes(k)) fail(`unknown arg "${k}"`);
  }
  for (const k of required) {
    if (!has(args, k)) fail(`missing arg "${k}"`);
  }
}

function checkString(args, k) {
  if (typeof args[k] !== "string") fail(`arg "${k}" must be a string`);
}

// Member, user and node ids are the lowercase hex SHA-256 of a certificate
// or key.
function checkID(args, k) {
  if (typeof args[k] !== "string" || !/^[0-9a-f]{64}$/.test(args[k])) {
    fail(`arg "${k}" must be an id: 64 lowercase hex digits`);
  }
}

function checkCert(args, k) {
  checkString(args, k);
  try {
    coco.parsePEMCertID(args[k]);
  } catch (e) {
    fail(`arg "${k}" must be a PEM X.509 certificate: ${e.message}`);
  }
}

// Recovery shares are sealed to a member's encryption key with HPKE, so the
// key must be of a DHKEM curve.
const HPKE_KEYS = ["X25519", "P-256", "P-384", "P-521"];

function checkEncryptionKey(args, k) {
  checkString(args, k);
  let alg;
  try {
    alg = coco.parsePEMPublicKey(args[k]);
  } catch (e) {
    fail(`arg "${k}" must be a PEM public key: ${e.message}`);
  }
  if (!HPKE_KEYS.includes(alg)) fail(`arg "${k}" has key type ${alg}, want one of ${HPKE_KEYS.join(", ")}`);
}

// Measurement sizes in bytes: the virtual code id, the SEV-SNP launch
// digest, the TDX MRTD.
const MEASUREMENT_BYTES = { virtual: 32, "sev-snp": 48, tdx: 48 };

function checkPlatform(args) {
  checkString(args, "platform");
  if (!has(MEASUREMENT_BYTES, args.platform)) {
    fail(`arg "platform" must be one of ${Object.keys(MEASUREMENT_BYTES).join(", ")}`);
  }
}

function isHex(v, emptyOK) {
  return typeof v === "string" && (emptyOK ? /^([0-9a-fA-F]{2})*$/ : /^([0-9a-fA-F]{2})+$/).test(v);
}

// checkHexList checks an array of at most max hex strings.
function checkHexList(args, k, max, emptyOK) {
  const v = args[k];
  if (!Array.isArray(v) || v.length > max || !v.every((h) => isHex(h, emptyOK))) {
    fail(`arg "${k}" must be a list of at most ${max} hex strings`);
  }
}

function checkMeasurement(args) {
  checkPlatform(args);
  const digits = 2 * MEASUREMENT_BYTES[args.platform];
  if (typeof args.measurement !== "string" || !new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(args.measurement)) {
    fail(`arg "measurement" must be ${digits} hex digits for platform ${args.platform}`);
  }
}

function checkInteger(args, k, lo, hi) {
  const v = args[k];
  if (!Number.isInteger(v) || v < lo || v > hi) fail(`arg "${k}" must be an integer from ${lo} to ${hi}`);
}

// ---- actions ----

// Each action checks its args (validate) and performs them (apply). Node
// actions go to the node through coco.host.
const ACTIONS = {
  set_member: {
    // A new member is "Accepted"; it becomes "Active" when it acknowledges
    // its membership (a node endpoint, not a proposal). Setting an existing
    // member keeps its status and replaces its data and key.
    check(args) {
      checkArgs(args, ["cert"], ["member_data", "encryption_key"]);
      checkCert(args, "cert");
      if (has(args, "encryption_key")) checkEncryptionKey(args, "encryption_key");
    },
    apply(args) {
      const id = coco.parsePEMCertID(args.cert);
      const old = getJSON(MEMBERS, id);
      const member = {
        cert: args.cert,
        status: old ? old.status : "Accepted",
        member_data: has(args, "member_data") ? args.member_data : null,
      };
      if (has(args, "encryption_key")) member.encryption_key = args.encryption_key;
      setJSON(MEMBERS, id, member);
    },
  },
  remove_member: {
    // Removing an absent member does nothing; removing the last active
    // member is refused, as nobody could govern after it.
    check(args) {
      checkArgs(args, ["member_id"], []);
      checkID(args, "member_id");
    },
    apply(args) {
      const member = getJSON(MEMBERS, args.member_id);
      if (!member) return;
      if (member.status === "Active" && activeMembers().size === 1) {
        throw new Error(`remove_member: ${args.member_id} is the last active member`);
      }
      coco.kv.delete(MEMBERS, args.member_id);
    },
  },
  set_member_data: {
    check(args) {
      checkArgs(args, ["member_id", "member_data"], []);
      checkID(args, "member_id");
    },
    apply(args) {
      const member = mustGet(MEMBERS, args.member_id, "set_member_data", "member");
      member.member_data = args.member_data;
      setJSON(MEMBERS, args.member_id, member);
    },
  },
  set_user: {
    check(args) {
      checkArgs(args, ["cert"], ["user_data"]);
      checkCert(args, "cert");
    },
    apply(args) {
      const user = { cert: args.cert, user_data: has(args, "user_data") ? args.user_data : null };
      setJSON(USERS, coco.parsePEMCertID(args.cert), user);
    },
  },
  remove_user: {
    // Removing an absent user does nothing.
    check(args) {
      checkArgs(args, ["user_id"], []);
      checkID(args, "user_id");
    },
    apply(args) {
      coco.kv.delete(USERS, args.user_id);
    },
  },
  set_user_data: {
    check(args) {
      checkArgs(args, ["user_id", "user_data"], []);
      checkID(args, "user_id");
    },
    apply(args) {
      const user = mustGet(USERS, args.user_id, "set_user_data", "user");
      user.user_data = args.user_data;
      setJSON(USERS, args.user_id, user);
    },
  },
  set_constitution: {
    // The new constitution must compile, or the service would be left
    // without governance.
    check(args) {
      checkArgs(args, ["constitution"], []);
      checkString(args, "constitution");
      try {
        coco.checkConstitution(args.constitution);
      } catch (e) {
        fail(`arg "constitution" does not compile: ${e.message}`);
      }
    },
    apply(args) {
      coco.kv.set(CONSTITUTION, "constitution", JSON.stringify(args.constitution));
    },
  },
  transition_service_to_open: {
    check(args) {
      checkArgs(args, [], []);
    },
    apply(args) {
      coco.host("transition_service_to_open", args);
    },
  },
  transition_node_to_trusted: {
    check(args) {
      checkArgs(args, ["node_id"], []);
      checkID(args, "node_id");
    },
    apply(args) {
      coco.host("transition_node_to_trusted", args);
    },
  },
  remove_node: {
    check(args) {
      checkArgs(args, ["node_id"], []);
      checkID(args, "node_id");
    },
    apply(args) {
      coco.host("remove_node", args);
    },
  },
  add_node_measurement: {
    check(args) {
      checkArgs(args, ["platform", "measurement"], []);
      checkMeasurement(args);
    },
    apply(args) {
      const m = { platform: args.platform, measurement: args.measurement.toLowerCase() };
      setJSON(MEASUREMENTS, `${m.platform}:${m.measurement}`, m);
    },
  },
  remove_node_measurement: {
    // Removing an absent measurement does nothing.
    check(args) {
      checkArgs(args, ["platform", "measurement"], []);
      checkMeasurement(args);
    },
    apply(args) {
      coco.kv.delete(MEASUREMENTS, `${args.platform}:${args.measurement.toLowerCase()}`);
    },
  },
  set_node_join_policy: {
    // The terms on which nodes of a platform may join; accepted: false
    // refuses the platform outright (a mixed network is only as strong as
    // its weakest TEE). The measurements are add_node_measurement's.
    // min_tcb is the lowest TCB version, hex, as the evidence reports it
    // (GET /node/quotes shows it): every byte, a component's security
    // version, must be at least this one's. host_data lists the accepted
    // SEV-SNP HOST_DATA / TDX MRCONFIGID; rtmrs the value each TDX RTMR
    // must have ("" for any).
    check(args) {
      checkArgs(args, ["platform", "accepted"], ["allow_insecure", "allow_debug", "min_tcb", "host_data", "rtmrs"]);
      checkPlatform(args);
      if (typeof args.accepted !== "boolean") fail(`arg "accepted" must be a boolean`);
      if (!args.accepted && Object.keys(args).length > 2) fail("a refused platform takes no other args");
      for (const k of ["allow_insecure", "allow_debug"]) {
        if (has(args, k) && typeof args[k] !== "boolean") fail(`arg "${k}" must be a boolean`);
      }
      if (has(args, "allow_insecure") && args.allow_insecure && args.platform !== "virtual") {
        fail(`arg "allow_insecure" is for the virtual platform only: ${args.platform} evidence is always hardware-backed`);
      }
      if (has(args, "min_tcb") && !isHex(args.min_tcb, false)) fail(`arg "min_tcb" must be hex digits`);
      if (has(args, "host_data")) checkHexList(args, "host_data", 64, false);
      if (has(args, "rtmrs")) {
        if (args.platform !== "tdx") fail(`arg "rtmrs" is for the tdx platform only`);
        checkHexList(args, "rtmrs", 4, true);
      }
    },
    apply(args) {
      if (!args.accepted) {
        coco.kv.delete(JOIN_POLICY, args.platform);
        return;
      }
      const p = { allow_insecure: args.allow_insecure === true, allow_debug: args.allow_debug === true };
      if (has(args, "min_tcb")) p.min_tcb = args.min_tcb.toLowerCase();
      if (has(args, "host_data")) p.host_data = args.host_data.map((h) => h.toLowerCase());
      if (has(args, "rtmrs")) p.rtmrs = args.rtmrs.map((h) => h.toLowerCase());
      setJSON(JOIN_POLICY, args.platform, p);
    },
  },
  set_service_configuration: {
    // auto_trust_nodes: whether a joining node whose evidence is accepted
    //   becomes trusted without a transition_node_to_trusted proposal.
    // max_proposal_age_s: how long a proposal may stay Open (1 s to 1 year).
    // recovery_threshold: how many recovery shares restore the ledger
    //   secret (1 to 255, the most Shamir sharing over GF(256) allows).
    check(args) {
      checkArgs(args, [], ["auto_trust_nodes", "max_proposal_age_s", "recovery_threshold"]);
      if (Object.keys(args).length === 0) fail("no setting given");
      if (has(args, "auto_trust_nodes") && typeof args.auto_trust_nodes !== "boolean") {
        fail(`arg "auto_trust_nodes" must be a boolean`);
      }
      if (has(args, "max_proposal_age_s")) checkInteger(args, "max_proposal_age_s", 1, 365 * 24 * 3600);
      if (has(args, "recovery_threshold")) checkInteger(args, "recovery_threshold", 1, 255);
    },
    apply(args) {
      coco.host("set_service_configuration", args);
    },
  },
  trigger_ledger_rekey: {
    check(args) {
      checkArgs(args, [], []);
    },
    apply(args) {
      coco.host("trigger_ledger_rekey", args);
    },
  },
};

function getJSON(table, key) {
  const v = coco.kv.get(table, key);
  return v === undefined ? undefined : JSON.parse(v);
}

function setJSON(table, key, value) {
  coco.kv.set(table, key, JSON.stringify(value));
}

function mustGet(table, key, action, what) {
  const v = getJSON(table, key);
  if (v === undefined) throw new Error(`${action}: no ${what} ${key}`);
  return v;
}

// parse checks a proposal's shape and every action's args, throwing Invalid
// with a message naming the action and the bad arg.
function parse(input) {
  let p;
  try {
    p = JSON.parse(input);
  } catch (e) {
    fail(`the proposal is not JSON: ${e.message}`);
  }
  if (!isPlainObject(p)) fail("the proposal must be an object");
  for (const k of Object.keys(p)) {
    if (k !== "actions") fail(`unknown proposal field "${k}"`);
  }
  if (!Array.isArray(p.actions) || p.actions.length === 0) fail(`"actions" must be a non-empty array`);
  p.actions.forEach((a, i) => {
    if (!isPlainObject(a)) fail(`action ${i} must be an object`);
    for (const k of Object.keys(a)) {
      if (k !== "name" && k !== "args") fail(`action ${i}: unknown field "${k}"`);
    }
    if (typeof a.name !== "string") fail(`action ${i}: "name" must be a string`);
    if (!has(ACTIONS, a.name)) fail(`action ${i}: unknown action "${a.name}"`);
    if (!has(a, "args")) a.args = {};
    if (!isPlainObject(a.args)) fail(`${a.name}: "args" must be an object`);
    try {
      ACTIONS[a.name].check(a.args);
    } catch (e) {
      if (e instanceof Invalid) fail(`${a.name}: ${e.message}`);
      throw e;
    }
  });
  return p;
}

export function validate(input) {
  try {
    const p = parse(input);
    return { valid: true, description: p.actions.map((a) => a.name).join(", ") };
  } catch (e) {
    if (e instanceof Invalid) return { valid: false, description: e.message };
    throw e;
  }
}

// apply checks the proposal again: the constitution may have changed since
// it was validated.
export function apply(proposal, proposalId) {
  for (const a of parse(proposal).actions) ACTIONS[a.name].apply(a.args);
}

// A sample Coco constitution with vetoes: the default constitution, except
// that the active members whose member_data has "veto": true hold a veto.
//
// A proposal is Rejected as soon as one active veto member votes against it.
// Otherwise it is Accepted once a strict majority of the active members
// (status "Active" in public:coco.gov.members) voted for it and every active
// veto member is among them; Rejected once so many active members voted
// against it that such a majority is no longer possible; and Open
// otherwise. Votes of members that are not active do not count. With no
// veto member it decides as the default constitution does.
//
// This file is only the part that differs: VetoSource appends to it the
// default constitution (default.js) from its "end resolve" marker on, so
// the two cannot drift apart.

// ---- begin resolve ----

export function resolve(proposal, proposerId, votes) {
  const active = activeMembers();
  const vetoes = vetoMembers(active);
  let yes = 0;
  let no = 0;
  let vetoYes = 0;
  for (const v of votes) {
    if (!active.has(v.member_id)) continue;
    if (vetoes.has(v.member_id)) {
      if (!v.vote) return "Rejected";
      vetoYes++;
    }
    if (v.vote) yes++;
    else no++;
  }
  const state = majority(yes, no, active.size);
  if (state === "Accepted" && vetoYes < vetoes.size) return "Open";
  return state;
}

// vetoMembers returns the ids, among active, of the members whose
// member_data has "veto": true.
function vetoMembers(active) {
  const ids = new Set();
  for (const id of active) {
    const data = JSON.parse(coco.kv.get(MEMBERS, id)).member_data;
    if (isPlainObject(data) && data.veto === true) ids.add(id);
  }
  return ids;
}

// ---- end resolve ----

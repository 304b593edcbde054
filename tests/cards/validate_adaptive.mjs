// Validates Adaptive Cards with Microsoft's own adaptivecards library (npm `adaptivecards`, pinned in
// package.json): the JSON array of cards on stdin, one result per card on stdout, in order:
//   [{"ok": bool, "events": [{"phase", "event", "message"}], "version": "..."}]
// `events` are what parsing at target version 1.5 logged (unknown element types, properties newer than 1.5,
// invalid values...) followed by what card.validateProperties() found (inputs without an id, duplicate ids,
// required inputs without a label or error message, too many actions...). A card is ok with no events.
// No JSON Schema for 1.5 ships anywhere, so this, the library the Teams clients' renderer comes from, is the
// check. dist/adaptivecards.min.js loads in plain Node: it touches the DOM only when rendering.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);
const AC = require("adaptivecards/dist/adaptivecards.min.js");

function describe(event) {
    return {
        phase: AC.ValidationPhase[event.phase] ?? String(event.phase),
        event: AC.ValidationEvent[event.event] ?? String(event.event),
        message: event.message,
    };
}

function validate(json) {
    const events = [];
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
        return { ok: false, events: [{ phase: "Parse", event: "Other", message: "a card must be a JSON object" }] };
    }
    if (json.type !== "AdaptiveCard") {
        events.push({ phase: "Parse", event: "MissingCardType", message: `type is ${JSON.stringify(json.type)}` });
    }
    const card = new AC.AdaptiveCard();
    const context = new AC.SerializationContext(AC.Versions.v1_5);
    try {
        card.parse(json, context);
    } catch (error) {
        events.push({ phase: "Parse", event: "Other", message: `parse threw: ${error}` });
    }
    for (let i = 0; i < context.eventCount; i++) {
        events.push(describe(context.getEventAt(i)));
    }
    try {
        for (const event of card.validateProperties().validationEvents) {
            events.push(describe(event));
        }
    } catch (error) {
        events.push({ phase: "Validation", event: "Other", message: `validateProperties threw: ${error}` });
    }
    return { ok: events.length === 0, events, version: card.version ? card.version.toString() : null };
}

const cards = JSON.parse(readFileSync(0, "utf8"));
if (!Array.isArray(cards)) {
    console.error("stdin must hold a JSON array of cards");
    process.exit(2);
}
process.stdout.write(JSON.stringify(cards.map(validate)));

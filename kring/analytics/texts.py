"""The report's words, Dutch first, English beside."""

from __future__ import annotations

LANGUAGES = ("nl", "en")

TEXTS: dict[str, dict[str, str]] = {
    "title": {"nl": "Wat de aanvragen opleverden", "en": "What the requests led to"},
    "subtitle": {
        "nl": "Kring: de vragen van het veld, beantwoord uit de gebeurtenissen op de stroom",
        "en": "Kring: the field's own questions, answered from the events on the stream",
    },
    "window": {"nl": "Aanvragen gedaan", "en": "Requests made"},
    "all_time": {"nl": "alle tijd", "en": "all time"},
    "from": {"nl": "vanaf", "en": "from"},
    "until": {"nl": "tot", "en": "until"},
    "made": {"nl": "Gemaakt", "en": "Made"},
    "read": {"nl": "Gelezen", "en": "Read"},
    "events_up_to": {"nl": "gebeurtenissen, tot", "en": "events, up to"},
    "erased_left_out": {
        "nl": "gewiste zaken weggelaten",
        "en": "erased cases left out",
    },
    "without_request": {
        "nl": "zaken zonder aanvraag op de stroom (niet meegeteld)",
        "en": "cases without a request on the stream (not counted)",
    },
    "key_figures": {"nl": "Kerncijfers", "en": "Key figures"},
    "figure": {"nl": "Cijfer", "en": "Figure"},
    "ours": {"nl": "Kring", "en": "Kring"},
    "reference": {"nl": "Gepubliceerd", "en": "Published"},
    "source": {"nl": "Bron", "en": "Source"},
    "sources": {"nl": "Bronnen", "en": "Sources"},
    "requests": {"nl": "Aanvragen", "en": "Requests"},
    "share_conference": {
        "nl": "Leidde tot een conferentie",
        "en": "Led to a conference",
    },
    "share_plan_without_meeting": {
        "nl": "Plan zonder bijeenkomst",
        "en": "Plan without a meeting",
    },
    "share_stopped": {"nl": "Gestopt zonder plan", "en": "Stopped without a plan"},
    "share_open": {"nl": "Nog onderweg", "en": "Still under way"},
    "median_to_conference": {
        "nl": "Dagen van aanvraag tot conferentie (mediaan; snelste)",
        "en": "Days from request to conference (median; fastest)",
    },
    "within_6_10_weeks": {
        "nl": "Conferentie binnen 6\u201310 weken na de aanvraag",
        "en": "Conference within 6\u201310 weeks of the request",
    },
    "mean_attended": {
        "nl": "Deelnemers per conferentie (gemiddeld)",
        "en": "People per conference (mean)",
    },
    "children_attended": {
        "nl": "Conferenties met kinderen erbij",
        "en": "Conferences with children there",
    },
    "agreements_kept": {
        "nl": "Afspraken nagekomen / deels / niet (bij het vervolg)",
        "en": "Agreements kept / partly / not (at follow-up)",
    },
    "rating_family_meeting": {
        "nl": "Cijfer familie en netwerk: bijeenkomst",
        "en": "Mark by family and network: meeting",
    },
    "rating_family_plan": {
        "nl": "Cijfer familie en netwerk: plan",
        "en": "Mark by family and network: plan",
    },
    "rating_professional_meeting": {
        "nl": "Cijfer professionals: bijeenkomst",
        "en": "Mark by professionals: meeting",
    },
    "rating_professional_plan": {
        "nl": "Cijfer professionals: plan",
        "en": "Mark by professionals: plan",
    },
    "follow_up_conferences": {
        "nl": "Vervolgconferenties aangevraagd",
        "en": "Follow-up conferences requested",
    },
    "no_reference": {"nl": "\u2014", "en": "\u2014"},
    "no_data": {"nl": "nog geen gegevens", "en": "no data yet"},
    # charts
    "chart_funnel": {"nl": "Van aanvraag tot vervolg", "en": "From request to follow-up"},
    "chart_outcomes": {"nl": "Waar de aanvragen eindigden", "en": "Where the requests ended"},
    "chart_lead_times": {
        "nl": "Doorlooptijden vanaf de aanvraag",
        "en": "Lead times from the request",
    },
    "chart_monthly": {"nl": "Per maand", "en": "By month"},
    "chart_attendance": {"nl": "Wie er kwamen", "en": "Who came"},
    "chart_agreements": {"nl": "Afspraken bij het vervolg", "en": "Agreements at follow-up"},
    "chart_ratings": {"nl": "Rapportcijfers", "en": "Marks"},
    "chart_follow_up": {"nl": "Het vervolg", "en": "The follow-up"},
    "chart_groups": {"nl": "Uitkomst per groep", "en": "Outcome by group"},
    "requested": {"nl": "Aangevraagd", "en": "Requested"},
    "accepted": {"nl": "Geaccepteerd", "en": "Accepted"},
    "coordinator_assigned": {"nl": "Co\u00f6rdinator toegewezen", "en": "Coordinator assigned"},
    "first_contact": {"nl": "Eerste contact", "en": "First contact"},
    "plan_made": {
        "nl": "Plan gemaakt (conferentie of zonder bijeenkomst)",
        "en": "Plan made (conference or without a meeting)",
    },
    "plan_distributed": {"nl": "Plan verspreid", "en": "Plan distributed"},
    "followed_up": {"nl": "Vervolg vastgelegd", "en": "Follow-up recorded"},
    "conference": {"nl": "Conferentie", "en": "Conference"},
    "plan_without_meeting": {"nl": "Plan zonder bijeenkomst", "en": "Plan without a meeting"},
    "stopped": {"nl": "Gestopt", "en": "Stopped"},
    "open": {"nl": "Onderweg", "en": "Under way"},
    "why_stopped": {"nl": "Waarom gestopt", "en": "Why stopped"},
    "stopped_at": {"nl": "Gestopt bij", "en": "Stopped at"},
    "withdrawn_before_acceptance": {
        "nl": "ingetrokken v\u00f3\u00f3r acceptatie",
        "en": "withdrawn before acceptance",
    },
    "request_withdrawn": {"nl": "aanvraag ingetrokken", "en": "request withdrawn"},
    "network_not_willing": {"nl": "netwerk wil niet", "en": "network not willing"},
    "safety": {"nl": "veiligheid", "en": "safety"},
    "no_coordinator": {"nl": "geen co\u00f6rdinator", "en": "no coordinator"},
    "other": {"nl": "anders", "en": "other"},
    "submitted": {"nl": "aangevraagd", "en": "requested"},
    "clarified": {"nl": "verduidelijkt", "en": "clarified"},
    "to_first_contact": {"nl": "tot eerste contact", "en": "to first contact"},
    "to_conference": {"nl": "tot de conferentie", "en": "to the conference"},
    "to_plan_distributed": {"nl": "tot het plan verspreid", "en": "to the plan distributed"},
    "days": {"nl": "dagen", "en": "days"},
    "hours": {"nl": "uren", "en": "hours"},
    "cases": {"nl": "zaken", "en": "cases"},
    "median": {"nl": "mediaan", "en": "median"},
    "fastest_2023": {"nl": "snelste in 2023: 4 dagen", "en": "fastest in 2023: 4 days"},
    "band_6_10_weeks": {"nl": "6\u201310 weken", "en": "6\u201310 weeks"},
    "conferences_held": {"nl": "Conferenties", "en": "Conferences"},
    "plans_distributed": {"nl": "Plannen verspreid", "en": "Plans distributed"},
    "people": {"nl": "personen per conferentie", "en": "people per conference"},
    "children_per_conference": {"nl": "kinderen per conferentie", "en": "children per conference"},
    "mean": {"nl": "gemiddeld", "en": "mean"},
    "published_9": {"nl": "gepubliceerd: 9", "en": "published: 9"},
    "kept": {"nl": "nagekomen", "en": "kept"},
    "partly_kept": {"nl": "deels", "en": "partly"},
    "not_kept": {"nl": "niet", "en": "not kept"},
    "coordinator_call": {"nl": "belronde co\u00f6rdinator", "en": "coordinator's call"},
    "research": {"nl": "onderzoek", "en": "research"},
    "contact": {"nl": "contact", "en": "contact"},
    "family_network": {"nl": "familie en netwerk", "en": "family and network"},
    "professional": {"nl": "professionals", "en": "professionals"},
    "meeting": {"nl": "bijeenkomst", "en": "meeting"},
    "plan": {"nl": "plan", "en": "plan"},
    "follow_up_contacts_reached": {
        "nl": "Vervolgcontacten (bereikt)",
        "en": "Follow-up contacts (reached)",
    },
    "requests_for_a_follow_up": {
        "nl": "Aanvragen voor een vervolgconferentie",
        "en": "Requests for a follow-up conference",
    },
    "reached": {"nl": "bereikt", "en": "reached"},
    "not_reached": {"nl": "niet bereikt", "en": "not reached"},
    "by_model": {"nl": "Per model", "en": "By model"},
    "by_region": {"nl": "Per regio", "en": "By region"},
    "by_month": {"nl": "Per maand van aanvraag", "en": "By month of request"},
    "group": {"nl": "Groep", "en": "Group"},
    "family": {"nl": "Eigen Kracht-conferentie", "en": "Family conference"},
    "group_model": {"nl": "Alle Hens", "en": "Group conference"},
    "restorative": {"nl": "Echt Recht", "en": "Restorative"},
    "learning_circle": {"nl": "Leercirkel", "en": "Learning circle"},
    "how_read": {"nl": "Zo is er geteld", "en": "How it was counted"},
    "how_read_text": {
        "nl": "Geteld worden de aanvragen die in de periode zijn gedaan, en alles wat er"
        " sindsdien mee gebeurde tot de laatste gebeurtenis op de stroom. Doorlooptijden tellen"
        " vanaf de aanvraag, niet vanaf de acceptatie. Deelnemers zijn de mensen die bij"
        " minstens \u00e9\u00e9n deel van de conferentie waren, ieder \u00e9\u00e9n keer; de"
        " co\u00f6rdinator en een tolk tellen niet mee. Kinderen: de rollen kind en leerling."
        " Waar een zaak stopte, is de laatste stap die op de stroom staat. Gewiste zaken tellen"
        " nergens mee. De gepubliceerde cijfers gaan over Eigen Kracht-conferenties in het"
        " hele land; die van Kring over alle modellen hier.",
        "en": "Counted are the requests made in the period, and everything that happened to"
        " them since, up to the last event on the stream. Lead times count from the request,"
        " not from acceptance. People at a conference are those at one part or more, each once;"
        " the coordinator and an interpreter are not counted. Children: the roles child and"
        " pupil. Where a case stopped is the last step the stream shows. Erased cases count"
        " nowhere. The published figures are about Eigen Kracht conferences across the"
        " country; Kring's about every model here.",
    },
    "language": {"nl": "English", "en": "Nederlands"},
}


def text(key: str, lang: str) -> str:
    entry = TEXTS.get(key)
    if entry is None:
        return key.replace("_", " ")
    return entry[lang]


def number(value: float | None, lang: str, digits: int = 1) -> str:
    if value is None:
        return "\u2014"
    shown = f"{value:.{digits}f}" if digits else f"{round(value):d}"
    return shown.replace(".", ",") if lang == "nl" else shown


def percent(value: float | None, lang: str) -> str:
    if value is None:
        return "\u2014"
    return f"{round(value * 100):d}%"

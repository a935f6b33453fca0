"""Props that lessons show on purpose: latency sampling, fault injection, shop data, small HTTP services,
scratch servers, trace trees and diagrams. Never imports checking/ or grading/."""

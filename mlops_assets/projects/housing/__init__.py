"""California housing prices (regression). The declaration is `project.PROJECT`; `domain` and `features` travel with the model."""
